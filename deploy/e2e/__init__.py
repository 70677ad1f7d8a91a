"""The end-to-end suite of the trading service (pytest), written once and run against
any base URL: a local binary, a container, staging, production."""
