package worker

import (
	"fmt"

	"github.com/groupsync/groupsync/queue"
)

// checkJobAuth refuses a queue that cannot authenticate jobs. The queue
// verifies each job's signature and app id before Next hands it out (see
// the queue package doc, "Signed jobs"), so no plan is ever made from a job
// that serve did not sign; a pool on a queue without a job key or app id
// would have nothing to go on, and does not start. There is no way around
// it: every deployment has a job key (`groupsync dev` makes one).
func checkJobAuth(q *queue.Queue) error {
	if err := q.CheckJobAuth(); err != nil {
		return fmt.Errorf("worker: refusing to start: %w", err)
	}
	return nil
}
