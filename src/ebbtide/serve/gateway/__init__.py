"""The request path: HTTP surface (app, admin, openapi), auth and keys, admission, the fallback choice (dispatch),
slots and the fair queue (broker), the proxy and its upstream client, validation and OpenAI-shaped errors."""
