package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/groupsync/groupsync/groupsync"
)

// AcceptedBody is the answer to a webhook whose job the queue stored.
type AcceptedBody struct {
	// JobID is the job's idempotency key.
	JobID string `json:"job_id"`
	// Duplicate reports that the queue already held this very job (its
	// publish was retried). Every delivery of a webhook is a job of its own,
	// so CometChat's retries are not reported here: the worker's planner
	// recognises them (docs/convergence.md).
	Duplicate bool `json:"duplicate"`
}

// RefusedBody is the answer to a webhook whose event is too big to apply:
// it was recorded as a failed job instead of being queued.
type RefusedBody struct {
	// JobID is the failed job's id.
	JobID string `json:"job_id"`
	// Duplicate reports that the job was already recorded (a retry).
	Duplicate bool `json:"duplicate"`
	// Refused is the reason.
	Refused string `json:"refused"`
}

// IgnoredBody is the answer to a webhook whose trigger groupsync does not
// handle.
type IgnoredBody struct {
	// Ignored is the trigger.
	Ignored string `json:"ignored"`
}

// digest hashes a credential, so that comparisons run on equal lengths.
func digest(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// bufPool holds body buffers; buffers grown past maxPooledBuf are dropped.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBuf = 64 << 10

// handleWebhook is POST /webhooks/cometchat. In order: Basic auth (401),
// media type (415), size (413), envelope (400), app id and webhook id (403),
// trigger (200 ignored), required keys (400), then the job is queued and the
// answer is 200 only once the queue acknowledged it, 503 with Retry-After
// otherwise. An event naming more members than groupsync.MaxEventMembers is
// recorded as a failed job instead (see FailedRecorder).
func (s *Server) handleWebhook(c echo.Context) error {
	r := c.Request()
	trigger := groupsync.Trigger("")
	count := func(outcome string) {
		s.metrics.requests.WithLabelValues(triggerLabel(trigger), outcome).Inc()
	}

	if !s.authorized(r) {
		count(outcomeUnauthorized)
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Basic realm="groupsync", charset="UTF-8"`)
		return c.JSON(http.StatusUnauthorized, errorBody{Error: "unauthorized"})
	}
	if !isJSON(r.Header.Get(echo.HeaderContentType)) {
		count(outcomeMediaType)
		return c.JSON(http.StatusUnsupportedMediaType, errorBody{Error: "content type must be application/json"})
	}
	tooLarge := func() error {
		count(outcomeTooLarge)
		// One line per refusal, without the body: its size is all that
		// is known of it (the peer passed Basic auth to get this far).
		ev := s.log.Warn().Int64("max_body_bytes", s.cfg.MaxBodyBytes).Str("remote_addr", r.RemoteAddr)
		if r.ContentLength > 0 {
			ev = ev.Int64("content_length", r.ContentLength)
		}
		ev.Msg("webhook body over the size limit refused (413)")
		return c.JSON(http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("body larger than %d bytes", s.cfg.MaxBodyBytes)})
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return tooLarge()
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuf {
			bufPool.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, s.cfg.MaxBodyBytes+1)); err != nil {
		count(outcomeInvalid)
		return c.JSON(http.StatusBadRequest, errorBody{Error: "cannot read body"})
	}
	if int64(buf.Len()) > s.cfg.MaxBodyBytes {
		return tooLarge()
	}

	job, err := groupsync.NewJob(buf.Bytes(), time.Now())
	ev := job.Event
	trigger = ev.Trigger
	c.Set(ctxTrigger, triggerLabel(trigger))
	var verr *groupsync.ValidationError
	if errors.As(err, &verr) && verr.Field == "body" {
		count(outcomeInvalid)
		return c.JSON(http.StatusBadRequest, errorBody{Error: verr.Message()})
	}
	if ev.AppID != "" && ev.AppID != s.cfg.AppID {
		count(outcomeForbidden)
		return c.JSON(http.StatusForbidden, errorBody{Error: "appId does not match"})
	}
	if s.cfg.WebhookID != "" && ev.AppID != "" && ev.Webhook != s.cfg.WebhookID {
		count(outcomeForbidden)
		return c.JSON(http.StatusForbidden, errorBody{Error: "webhook id does not match"})
	}
	var tooMany *groupsync.TooManyMembersError
	if errors.As(err, &tooMany) {
		return s.refuse(c, job, tooMany, count)
	}
	if errors.Is(err, groupsync.ErrUnknownTrigger) {
		count(outcomeIgnored)
		var ute *groupsync.UnknownTriggerError
		errors.As(err, &ute)
		return c.JSON(http.StatusOK, IgnoredBody{Ignored: ute.Trigger})
	}
	if err != nil {
		count(outcomeInvalid)
		msg := "invalid body"
		if verr != nil {
			msg = verr.Message()
		}
		return c.JSON(http.StatusBadRequest, errorBody{Error: msg})
	}
	if clamped := job.ClampTimes(s.cfg.MaxClockSkew); len(clamped) > 0 {
		s.metrics.clamped.WithLabelValues(triggerLabel(trigger)).Inc()
		s.log.Warn().Str("trigger", string(trigger)).Str("guid", ev.GUID).Str("job_id", job.ID).
			Strs("clamped", clamped).Time("received_at", job.ReceivedAt).Dur("max_clock_skew", s.cfg.MaxClockSkew).
			Msg("event times beyond the allowed clock skew clamped")
	}
	c.Set(ctxGUID, ev.GUID)
	c.Set(ctxJobID, job.ID)

	dup, err := s.enqueue(r.Context(), job)
	if err != nil {
		count(outcomeUnavailable)
		s.log.Warn().Err(err).Str("trigger", string(trigger)).Str("guid", ev.GUID).Str("job_id", job.ID).
			Msg("queue unavailable, asking CometChat to retry")
		c.Response().Header().Set(echo.HeaderRetryAfter, s.retryAfter)
		return c.JSON(http.StatusServiceUnavailable, errorBody{Error: "queue unavailable, retry later"})
	}
	if dup {
		count(outcomeDuplicate)
	} else {
		count(outcomeAccepted)
	}
	return c.JSON(http.StatusOK, AcceptedBody{JobID: job.ID, Duplicate: dup})
}

// refuse records a job too big to apply as a failed job: 200 once it is
// stored, 503 (CometChat retries) when it could not be, 413 without a
// FailedRecorder.
func (s *Server) refuse(c echo.Context, job groupsync.Job, tooMany *groupsync.TooManyMembersError, count func(string)) error {
	ev := job.Event
	c.Set(ctxGUID, ev.GUID)
	c.Set(ctxJobID, job.ID)
	log := s.log.With().Str("trigger", string(ev.Trigger)).Str("guid", ev.GUID).Str("job_id", job.ID).
		Int("members", tooMany.Count).Logger()
	rec, ok := s.enq.(FailedRecorder)
	if !ok {
		count(outcomeTooLarge)
		log.Warn().Msg("event too big to apply refused; no failed-job recorder")
		return c.JSON(http.StatusRequestEntityTooLarge, errorBody{Error: tooMany.Message()})
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.PublishTimeout)
	defer cancel()
	dup, err := rec.RecordRefused(ctx, job, tooMany.Count, tooMany.Message())
	if err != nil {
		count(outcomeUnavailable)
		log.Warn().Err(err).Msg("could not record an event too big to apply, asking CometChat to retry")
		c.Response().Header().Set(echo.HeaderRetryAfter, s.retryAfter)
		return c.JSON(http.StatusServiceUnavailable, errorBody{Error: "queue unavailable, retry later"})
	}
	count(outcomeRefused)
	log.Error().Bool("duplicate", dup).Msg("event too big to apply recorded as a failed job")
	return c.JSON(http.StatusOK, RefusedBody{JobID: job.ID, Duplicate: dup, Refused: tooMany.Message()})
}

// errPublishTimeout reports an Enqueue that did not return within
// PublishTimeout.
var errPublishTimeout = errors.New("webhook: queue did not acknowledge in time")

// enqueue hands job to the Enqueuer and waits at most PublishTimeout for its
// acknowledgement, even if the Enqueuer ignores its context.
func (s *Server) enqueue(ctx context.Context, job groupsync.Job) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
	type result struct {
		dup bool
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		dup, err := s.enq.Enqueue(ctx, job)
		done <- result{dup, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		res.err = fmt.Errorf("%w (%v): %w", errPublishTimeout, s.cfg.PublishTimeout, ctx.Err())
	}
	s.metrics.publishLatency.Observe(time.Since(start).Seconds())
	if res.err != nil {
		return false, fmt.Errorf("webhook: enqueue job %s: %w", job.ID, res.err)
	}
	return res.dup, nil
}

// authorized checks the Basic auth credentials in constant time: both the
// user name and the password are always compared, on their SHA-256 digests,
// so neither their contents nor their lengths leak through timing.
func (s *Server) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	u, p := digest(user), digest(pass)
	match := subtle.ConstantTimeCompare(u[:], s.webhookUser[:]) & subtle.ConstantTimeCompare(p[:], s.webhookPass[:])
	return ok && match == 1
}

// isJSON reports whether a Content-Type names application/json, compared
// case-insensitively, whatever its parameters.
func isJSON(contentType string) bool {
	if contentType == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		// A malformed parameter list; judge the media type alone.
		mt, _, _ = strings.Cut(contentType, ";")
		mt = strings.TrimSpace(mt)
	}
	return strings.EqualFold(mt, "application/json")
}
