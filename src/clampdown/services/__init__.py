"""Services: the operations the CLI, API and console call. They validate, then use store/engine."""
