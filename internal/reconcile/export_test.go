package reconcile

// SetHistoryRows makes checkHistory read at most n records at a time, until
// the returned func restores the bound.
func SetHistoryRows(n int) (restore func()) {
	was := historyRows
	historyRows = n
	return func() { historyRows = was }
}
