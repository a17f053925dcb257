package incident

import "time"

// KeyIdleTTL is how long a key with nothing open is remembered after its last report.
// What such a key holds is only the hashes of the reports it applied (to drop a
// redelivery, which comes within minutes) and its last failure time; forgetting it after
// a day keeps the manager's memory bounded by the keys active within a day, not by every
// key ever seen.
const KeyIdleTTL = 24 * time.Hour

// EvictIdle forgets the keys that saw no report for KeyIdleTTL and hold nothing that
// matters: no open incident, no streak of failures or successes being counted, no
// suppression after a hand-ended incident, no create or claim in doubt. A key busy with
// a report is skipped. Run calls it every minute; it returns how many keys it forgot.
func (m *Manager) EvictIdle() int {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for hash, ks := range m.keys {
		if now.Sub(ks.touched) < KeyIdleTTL || !ks.mu.tryLock() {
			continue
		}
		if ks.evictable() {
			delete(m.keys, hash)
			n++
		}
		ks.mu.unlock()
	}
	if n > 0 {
		m.log.Debug().Int("keys", n).Int("left", len(m.keys)).Msg("forgot idle incident keys")
	}
	return n
}

// evictable: nothing of the key outlives it. Under ks.mu.
func (ks *keyState) evictable() bool {
	return ks.inc == nil && ks.failStreak == 0 && ks.successStreak == 0 && !ks.suppressed &&
		!ks.pendingCreate && !ks.kvClaim && ks.kvRev == 0
}

// Keys is the number of incident keys held in memory.
func (m *Manager) Keys() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.keys)
}
