//! Diagnosis of any streaming endpoint (see `diagnose`).
