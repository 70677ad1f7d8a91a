"""The pipeline library: settings, runner, stage contract, stages, services, flows."""
