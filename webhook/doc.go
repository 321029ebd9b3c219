// Package webhook is groupsync's HTTP server, built on echo v4 and hidden
// behind Server so that no caller depends on echo.
//
// # Endpoints
//
//   - POST /webhooks/cometchat receives CometChat "Webhooks" (v2) bodies. It
//     checks Basic auth in constant time (401), the media type
//     (application/json, compared case-insensitively; 415), the size (413,
//     counted as outcome "too_large" and logged as a warning with the limit
//     and the peer's address, never the body), the body (400, naming the missing field), the app id and, when
//     configured, the webhook id (403). A trigger groupsync does not handle
//     gets 200 {"ignored": trigger}. Otherwise the body becomes a
//     groupsync.Job, handed to the Enqueuer; the answer is 200
//     {"job_id", "duplicate"} only once the queue acknowledged the job, and
//     503 with Retry-After when it failed or took longer than
//     Config.PublishTimeout, so that CometChat retries.
//   - GET /v1/virgil-jwt and POST /v1/get-identities are the client API of
//     CometChat's end-to-end encryption extension, with the same shapes. The
//     caller names itself in X-CometChat-UID; in "cometchat" mode it also
//     sends its CometChat auth token as a Bearer token, checked with
//     CometChat's REST API through a cometchat.Client and cached briefly.
//
// # The client API's edge
//
// In order, for every client API request (see Server.clientAuth):
//
//  1. CORS: only Config.CORS origins get CORS headers (the origin named,
//     never "*", never credentials); their preflights get 204, others' 403.
//  2. The client IP's token bucket (Config.Limits; the connection's peer,
//     X-Forwarded-For only from Limits.TrustedProxies): 429 with
//     Retry-After when empty.
//  3. X-CometChat-UID must be a CometChat uid and the Bearer token of
//     CometChat's syntax (A-Z, a-z, 0-9, "_", "-", bounded): 401 otherwise,
//     and CometChat is not asked.
//  4. The uid's token bucket, unless this (uid, token) was verified within
//     CacheTTL: 429 with Retry-After when empty.
//  5. The token check: verified tokens are cached in a bounded LRU, refused
//     ones in a separate small one, and concurrent checks of one (uid, token)
//     share one call. Only a 200 naming the caller (and the token) passes;
//     other answers, redirects (never followed) and malformed bodies are
//     401, CometChat unreachable or failing is 503 with Retry-After.
//     - GET /healthz (alive), GET /readyz (Config.ReadyChecks) and GET /metrics
//     (Prometheus).
//
// # Logging
//
// One line per request: method, route, status, duration, and for webhooks
// the trigger, group and job id. Headers and bodies are never logged.
package webhook
