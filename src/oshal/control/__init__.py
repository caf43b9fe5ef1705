"""Control plane: API, auth gate, ticket service, dispatcher, result collector and sweeper."""
