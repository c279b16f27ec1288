"""Data files of the de-identification profile, generated (never hand-edited) by
:mod:`openjip.deid.tables.generate`."""
