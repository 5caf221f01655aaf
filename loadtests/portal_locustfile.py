"""Portal load scenario (locust): customers sign in, look at their dashboard and history, price numbers.

    .venv/bin/python -m loadtests.seed_portal --customers 200        # once, into the configured database
    .venv/bin/locust -f loadtests/portal_locustfile.py --headless -u 200 -r 50 -t 30s --host http://127.0.0.1:8080

Each simulated user signs in once, as one of the seeded customers (load0001, load0002...), as a
person does, then reads; the web callback scenario comes with the web callback page.
"""

from __future__ import annotations

import itertools
import os
import random

from locust import HttpUser, between, task

CUSTOMERS = int(os.environ.get("PORTAL_LOAD_CUSTOMERS", "200"))
PASSWORD = os.environ.get("PORTAL_LOAD_PASSWORD", "load-test-password")
NUMBERS = ["+447700900123", "+12125550100", "+4420794600", "+15550001234"]
_logins = itertools.cycle(f"load{n:04d}" for n in range(1, CUSTOMERS + 1))


class Customer(HttpUser):
    wait_time = between(1, 5)  # a person reads a page before the next click

    def on_start(self) -> None:
        self.login = next(_logins)
        self.sign_in()

    def sign_in(self) -> None:
        self.client.post("/api/session", json={"login": self.login, "password": PASSWORD}, name="POST /api/session")

    @task(6)
    def dashboard(self) -> None:
        self.client.get("/api/me", name="GET /api/me")

    @task(4)
    def history(self) -> None:
        self.client.get("/api/me/calls", name="GET /api/me/calls")

    @task(3)
    def rate_lookup(self) -> None:
        self.client.get("/api/me/rate", params={"number": random.choice(NUMBERS)}, name="GET /api/me/rate")
