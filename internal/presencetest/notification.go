package presencetest

// NotificationAnswer is the body of a 200 to a notification POST
// (PROTOCOL §4): queue_size is the last item's, each result its item's.
type NotificationAnswer struct {
	Result    string `json:"result"`
	QueueSize int    `json:"queue_size"`
	Results   []struct {
		UID       string `json:"UID"`
		QueueSize int    `json:"queue_size"`
	} `json:"results"`
}
