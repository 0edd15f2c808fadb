"""nodeloom.api: the REST management API and the HTTP client of the SDK. Not built yet."""
