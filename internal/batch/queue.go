package batch

// queue holds the records waiting to be sent, first in first out, one line
// per model, so that a model that may not take another call yet (unproven
// and at its cap, or stopped) holds back only its own records. It is used
// by the dispatcher alone.
type queue struct {
	byModel map[string][]queued
	seq     int64
	n       int
}

type queued struct {
	idx int
	seq int64 // order of arrival across models
}

func newQueue() *queue { return &queue{byModel: map[string][]queued{}} }

// push adds record idx, sent to model, at the end.
func (q *queue) push(model string, idx int) {
	q.seq++
	q.byModel[model] = append(q.byModel[model], queued{idx: idx, seq: q.seq})
	q.n++
}

// len is how many records wait.
func (q *queue) len() int { return q.n }

// pop takes the record that came first among the models may allows; ok is
// false when none does. It asks may once per model.
func (q *queue) pop(may func(model string) bool) (idx int, ok bool) {
	best := ""
	for m, l := range q.byModel {
		if (!ok || l[0].seq < q.byModel[best][0].seq) && may(m) {
			best, ok = m, true
		}
	}
	if !ok {
		return 0, false
	}
	l := q.byModel[best]
	idx = l[0].idx
	if len(l) == 1 {
		delete(q.byModel, best)
	} else {
		q.byModel[best] = l[1:]
	}
	q.n--
	return idx, true
}

// drop removes model's records and says how many there were.
func (q *queue) drop(model string) int {
	n := len(q.byModel[model])
	delete(q.byModel, model)
	q.n -= n
	return n
}

// canPop reports whether pop would find a record.
func (q *queue) canPop(may func(model string) bool) bool {
	for m := range q.byModel {
		if may(m) {
			return true
		}
	}
	return false
}
