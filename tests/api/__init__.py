"""The API: CHQ's wire format and documents, the request path, the guard on every kind of view,
limits, OpenAPI, hostile input, and real servers called over sockets."""
