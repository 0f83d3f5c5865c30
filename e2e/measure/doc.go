// Package measure runs trials on a lab (e2e/lab) with its traffic
// (e2e/traffic) and judges them: failover trials (FailoverTrial,
// StreamFaultTrial), the fault trials of issue 16 (FaultEnv and its
// trials), the pure analysis of what a client saw (AnalyzeFailover,
// AnalyzeStream, DualAnswers, the Judge* functions), statistics
// (Percentiles, Median) and the pieces of the reports (Millis, Summary,
// Failures, StreamRow, OpenReport). The suite asserts on its results and
// `make lab-*` (e2e/cmd/lab) writes them into docs; everything but the
// trials runs without root or a lab, and is unit-tested.
package measure
