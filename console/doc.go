// Package console is groupsync's web console for operators: an
// http.Handler that shows the queue, the failed jobs and the groups, and
// retries or purges failed jobs.
//
// # Pages
//
//   - GET / is the overview: jobs waiting per partition and the age of the
//     oldest, failed jobs, jobs applied and retried per minute, the lag from
//     webhook to Virgil, the workers seen and the scheduled reconcile.
//   - GET /failed lists the dead-lettered jobs, newest first, filtered by
//     text (q), group and trigger, at most 500 (limit, up to 10000); GET
//     /failed/{id} shows one with its reason, attempts and
//     body, secrets redacted. POST /failed/retry retries the jobs named by
//     the form's id fields (one or several), POST /failed/retry-all every
//     one, and POST /failed/purge drops them all once its form says
//     confirm=yes (GET /failed/purge asks).
//   - GET /groups/{guid} shows a group: its participants and pending members
//     by uid, the newest page of its audit trail and its failed jobs; GET
//     /groups/{guid}?before=SEQ the next older page of the audit trail
//     (the records below audit sequence SEQ), which the "Older changes"
//     link of a page, and "older" in its JSON, give until the oldest
//     record kept (anything but a whole number from 1 is a 400); GET
//     /groups/{guid}/members/{uid} explains one member. GET /groups?guid=
//     and GET /groups/{guid}/members?uid= are the forms' targets.
//
// Every page answers JSON instead of HTML when the request's Accept header
// asks for application/json; POSTs then answer JSON too instead of
// redirecting.
//
// # Security
//
// Every request, static files and unknown paths included, needs HTTP Basic
// auth with Config.Username and Config.Password, compared in constant time
// (so scripts can use curl -u). A client IP (IPv6: its /64; behind
// Config.TrustedProxies, the address their X-Forwarded-For names) that sends
// wrong credentials more than Config.FailureBurst times is answered 429
// with Retry-After until its bucket refills at Config.FailureRate; wrong
// credentials are otherwise 401. Every POST needs the CSRF token of the
// credentials, in the form field "csrf" or the X-CSRF-Token header (403
// without it, with a wrong one, or from another origin); it is an HMAC of
// the credentials under Config.CSRFKey (groupsync derives it from the job
// key, so every serve of a deployment makes and takes the same token;
// Config.PreviousCSRFKey's tokens are taken too while it changes), and
// every authenticated answer carries it in its X-CSRF-Token header. Answers carry a Content Security
// Policy without scripts, X-Frame-Options DENY and Cache-Control no-store.
// Pages never show a secret: job signatures, keys, tokens and passwords are
// left out or redacted by the Backend, and reasons pass through redact.
// Requests are logged without their headers or credentials.
//
// # Why net/http
//
// The console is a handful of GET pages and three POSTs: the standard
// library's ServeMux (method and wildcard patterns since Go 1.22) routes
// them, html/template renders them, http.CrossOriginProtection checks the
// origin of POSTs, and the whole is one http.Handler that tests drive with
// httptest. The webhook package's echo would add binding and middleware it
// does not need; keeping the console on net/http also keeps echo out of
// its tests and its import list.
package console
