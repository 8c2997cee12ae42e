import { useCallback, useEffect, useState } from "preact/hooks";
import { ApiError, getJson, type Member, type VigilEvent } from "./api.ts";
import { stateLabel } from "./format.ts";
import { useLiveEvents } from "./live.tsx";

// Members as this node sees them, refreshed every 2 s and at once on member.* events, so a
// node going down shows within the membership's own detection time.

const REFRESH_MS = 2_000;

export function ClusterPage() {
  const [members, setMembers] = useState<Member[] | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [updatedAt, setUpdatedAt] = useState(0);

  const load = useCallback(() => {
    getJson<{ members: Member[] }>("/v1/members").then(
      (r) => {
        setMembers(r.members);
        setError(undefined);
        setUpdatedAt(Date.now());
      },
      (e: unknown) => setError(e instanceof ApiError ? e.message : String(e)),
    );
  }, []);
  useEffect(() => {
    load();
    const id = setInterval(load, REFRESH_MS);
    return () => clearInterval(id);
  }, [load]);
  const onEvent = useCallback(
    (e: VigilEvent) => {
      if (e.type.startsWith("member.")) load();
    },
    [load],
  );
  useLiveEvents(onEvent, load);

  const byState = (s: string) => members?.filter((m) => m.state === s).length ?? 0;
  const zones = new Set(members?.map((m) => m.zone));
  return (
    <>
      <h1 tabIndex={-1}>Cluster</h1>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      {members ? (
        <>
          <p class="cluster-summary" data-testid="cluster-summary">
            <span>
              <strong>{members.length}</strong> members
            </span>
            <span>
              <strong>{byState("alive")}</strong> alive
            </span>
            {byState("suspect") > 0 ? (
              <span class="badge s-suspect">{byState("suspect")} suspect</span>
            ) : null}
            {byState("dead") > 0 ? <span class="badge s-dead">{byState("dead")} dead</span> : null}
            {byState("left") > 0 ? <span class="badge s-left">{byState("left")} left</span> : null}
            <span>
              <strong>{zones.size}</strong> {zones.size === 1 ? "zone" : "zones"}
            </span>
          </p>
          <div class="table-wrap">
            <table class="data" data-testid="members">
              <caption class="sr-only">Cluster members as this node sees them</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">State</th>
                  <th scope="col">Zone</th>
                  <th scope="col">Owns</th>
                  <th scope="col">Local health</th>
                  <th scope="col">Incarnation</th>
                  <th scope="col">API</th>
                  <th scope="col">Version</th>
                </tr>
              </thead>
              <tbody>
                {members.map((m) => (
                  <tr key={m.name} data-member={m.name} data-state={m.state}>
                    <th scope="row">
                      {m.name}
                      {m.self ? <span class="muted"> (this node)</span> : null}
                    </th>
                    <td>
                      <span class={`badge s-${m.state}`}>{stateLabel(m.state)}</span>
                    </td>
                    <td>{m.zone}</td>
                    <td class="num">{m.owned ?? "—"}</td>
                    <td
                      class="num"
                      title="Lifeguard score: 0 is healthy; higher means slow or losing packets"
                    >
                      {m.localHealth === undefined
                        ? "—"
                        : m.localHealth === 0
                          ? "0 (healthy)"
                          : m.localHealth}
                    </td>
                    <td class="num">{m.incarnation}</td>
                    <td class="mono">
                      {m.api && !m.self ? (
                        <a href={`${m.api}/`} rel="noreferrer">
                          {m.api}
                        </a>
                      ) : (
                        m.api || "—"
                      )}
                    </td>
                    <td>{m.version || "—"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <p class="muted">
            Local health is known for this node only; open another member's dashboard for its own. Updated{" "}
            {new Date(updatedAt).toLocaleTimeString()}.
          </p>
        </>
      ) : error ? null : (
        <p class="muted">Loading…</p>
      )}
    </>
  );
}
