// Package webhook is groupsync's HTTP server, built on echo v4 and hidden
// behind Server so that no caller depends on echo.
//
// # Endpoints
//
//   - POST /webhooks/cometchat receives CometChat "Webhooks" (v2) bodies. It
//     checks Basic auth in constant time (401), the media type
//     (application/json, compared case-insensitively; 415), the size (413),
//     the body (400, naming the missing field), the app id and, when
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
//     CometChat's REST API and cached briefly.
//   - GET /healthz (alive), GET /readyz (Config.ReadyChecks) and GET /metrics
//     (Prometheus).
//
// # Logging
//
// One line per request: method, route, status, duration, and for webhooks
// the trigger, group and job id. Headers and bodies are never logged.
package webhook
