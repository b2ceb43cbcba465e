package jetstream

// NotificationSubject is notificationSubject, for tests that write to a
// user's queue as another client of the account could.
var NotificationSubject = notificationSubject
