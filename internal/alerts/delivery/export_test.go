package delivery

// DueTargets is the dispatcher's statement listing targets with deliveries
// due, for plan tests.
const DueTargets = dueTargets
