"""Cohorts: selections of patients, studies and series, saved by name in the object store, and
what people type into a workflow's series field resolved to series. It sits above the index and
the store (it reads both), beside ``ingest``; workflows and the web service use it."""
