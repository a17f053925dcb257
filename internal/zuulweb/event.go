package zuulweb

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// ErrNoResult is returned by ToEvent for a buildset without a result: it is running, or
// its database row has not been updated yet (zuul publishes MQTT before it writes SQL).
var ErrNoResult = errors.New("zuulweb: buildset has no result yet")

// ToEvent maps a completed buildset, ideally the detail from Client.Buildset (a list
// element has no builds, so its event has no FailedBuilds), to the zuul.Event that
// zuul.Decode makes of the MQTT report of the same buildset:
//
//   - ID "<buildset uuid>-<RESULT>", as zuul.Decode's identity for a final report, so the
//     two sources de-duplicate against each other; Source is zuul.SourceREST.
//   - Result is the buildset result; Outcome follows zuul.Decode: SUCCESS success, NO_JOBS
//     and DEQUEUED neutral, anything else failure.
//   - Action is what Zuul's reporter would say: "success", "failure" (also for
//     MERGE_CONFLICT and CONFIG_ERROR, which SCS reports through its failure reporters),
//     "dequeue", "no-jobs".
//   - Project, Branch, Ref, Change, Patchset, ChangeURL come from refs[0]; CommitID from its
//     newrev. TriggerTime is event_timestamp, Timestamp is last_build_end_time (the report
//     follows the last build); both are whole seconds, UTC.
//   - Builds are the final builds (retried attempts dropped, as MQTT lists them under
//     retry_builds), in build id order. Their Result is Zuul's raw code: MQTT may carry a
//     job's success/failure-message instead, which Build.Failed treats alike.
//   - Not in REST, so left empty: ItemUUID, Queue, Owner, EnqueueTime, Build.JobUUID.
//     ZuulRef is derived ("Z" + uuid); BuildsetURL and Build.WebURL are derived from the
//     client's base URL when the buildset came through a Client.
//
// Raw is the buildset JSON as received. Recovered is left false: the reconciler decides.
func ToEvent(tenant string, bs *Buildset) (*zuul.Event, error) {
	if bs == nil || bs.UUID == "" {
		return nil, errors.New("zuulweb: buildset without uuid")
	}
	if bs.Result == "" {
		return nil, ErrNoResult
	}
	ev := &zuul.Event{
		ID:           bs.UUID + "-" + bs.Result,
		Timestamp:    bs.LastBuildEndTime.Time,
		TriggerTime:  bs.EventTimestamp.Time,
		Action:       action(bs.Result),
		Tenant:       tenant,
		Pipeline:     bs.Pipeline,
		Message:      bs.Message,
		ZuulRef:      "Z" + bs.UUID,
		ZuulEventID:  bs.EventID,
		BuildsetUUID: bs.UUID,
		Result:       bs.Result,
		Outcome:      outcome(bs.Result),
		Source:       zuul.SourceREST,
		Raw:          bs.raw,
	}
	if len(bs.Refs) > 0 {
		r := bs.Refs[0]
		ev.Project, ev.Branch, ev.Ref = r.Project, r.Branch, r.Ref
		if r.Change != 0 {
			ev.Change = strconv.FormatInt(r.Change, 10)
		}
		ev.Patchset, ev.ChangeURL, ev.CommitID = r.Patchset, r.RefURL, r.NewRev
	}
	if bs.webRoot != "" {
		ev.BuildsetURL = bs.webRoot + "/t/" + tenant + "/buildset/" + bs.UUID
	}
	for _, b := range bs.Builds {
		if b.Final != nil && !*b.Final {
			continue
		}
		eb := zuul.Build{
			JobName:   b.JobName,
			UUID:      b.UUID,
			Voting:    b.Voting,
			Result:    b.Result,
			LogURL:    b.LogURL,
			StartTime: b.StartTime.Time,
			EndTime:   b.EndTime.Time,
		}
		if bs.webRoot != "" && b.UUID != "" {
			eb.WebURL = bs.webRoot + "/t/" + tenant + "/build/" + b.UUID
		}
		ev.Builds = append(ev.Builds, eb)
	}
	if ev.Raw == nil {
		raw, err := json.Marshal(bs)
		if err != nil {
			return nil, err
		}
		ev.Raw = raw
	}
	return ev, nil
}

func outcome(result string) zuul.Outcome {
	switch result {
	case "SUCCESS":
		return zuul.OutcomeSuccess
	case "NO_JOBS", "DEQUEUED":
		return zuul.OutcomeNeutral
	}
	return zuul.OutcomeFailure
}

func action(result string) string {
	switch result {
	case "SUCCESS":
		return "success"
	case "DEQUEUED":
		return "dequeue"
	case "NO_JOBS":
		return "no-jobs"
	}
	return "failure"
}
