#!/usr/bin/env node
// Thin launcher so `npx vigil` works; the CLI itself is TypeScript run by Node's type stripping.
import "../src/cli/main.ts";
