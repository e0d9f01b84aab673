"""The routes, one module per API family; each turns its body into a call on the services."""
