"""The HTTP layer: routes, dependencies, schemas, middleware and error handlers."""
