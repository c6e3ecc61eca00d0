// Package fakeclock is a manually advanced backends.Clock for tests: time moves
// only when the test calls Advance or Set, and due AfterFunc callbacks run
// synchronously inside that call, in deadline order, so tests synchronise on
// the clock instead of sleeping.
package fakeclock
