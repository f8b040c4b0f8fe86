"""Tests of the compose files (issue 4): compose/single-node.yaml, compose/two-node.yaml,
compose/common.yaml and compose/.env.example.

``tests.compose.env_example`` renders .env.example; ``tests.compose.composeutil`` runs
``docker compose`` with a clean, explicit environment.
"""
