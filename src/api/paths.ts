// Where the API listens. Shared by the daemon and rundirctl (which must not load the server).

/**
 * Root's own socket beside the API's, made when an api-group may use the API: without the
 * peer's credentials (Node has no SO_PEERCRED) one socket cannot keep connections for root,
 * so root gets a socket of its own (0600) that group members cannot open, with connections of
 * its own. `api.sock` → `api.root.sock`.
 */
export function rootApiSocket(path: string): string {
  return path.endsWith('.sock') ? `${path.slice(0, -'.sock'.length)}.root.sock` : `${path}.root`;
}
