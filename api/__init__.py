"""nodeloom.api: the REST management API (`create_app`, `nodeloom serve`) and its SDK client.

The client (`nodeloom.api.client.Client`, `AsyncClient`) needs only httpx; the server
parts import FastAPI, SQLModel and Alembic, so they are not imported here.
"""
