"""The provincial portal: dossier codes, the API client and its breaker, the poller for followed dossiers."""
