/** The gateway container's fixed ports. The NLB maps the public 22 to SSH_PORT. */
export const PUBLIC_SSH_PORT = 22;
export const GATEWAY_SSH_PORT = 2222;
/** Health endpoint the NLB (and the container health check) asks. */
export const GATEWAY_HEALTH_PORT = 8080;
/** Internal control endpoint (tunnel tests), called by the API Lambda. */
export const GATEWAY_CONTROL_PORT = 8081;
