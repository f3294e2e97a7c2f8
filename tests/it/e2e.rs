//! Browser tests (fantoccini over chromedriver). They run when `PARLEY_E2E=1`; then a missing
//! browser is a failure, never a skip.
