"""Sign-up, sign-in, sign-out, password change and CSRF."""

from __future__ import annotations

import pytest
from webtools import Web, csrf, signup

pytestmark = pytest.mark.integration


def test_pages_need_sign_in(web: Web) -> None:
    answer = web.client.get("/account/password", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/signin?next=")


def test_signup_signin_signout_and_password_change(web: Web) -> None:
    signup(web.client, "owner@shop.test", "Shop One")
    assert web.client.get("/account/password").status_code == 200
    token = csrf(web.client, "/account/password")
    bad = web.client.post(
        "/account/password", data={"current": "wrong", "new": "another good one", "csrf_token": token}
    )
    assert bad.status_code == 422
    assert "not your current password" in bad.text
    ok = web.client.post(
        "/account/password",
        data={"current": "correct horse battery", "new": "another good one", "csrf_token": token},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    web.client.post("/signout", data={"csrf_token": token})
    assert web.client.get("/account/password", follow_redirects=False).status_code == 303
    token = csrf(web.client)
    refused = web.client.post(
        "/signin", data={"email": "owner@shop.test", "password": "correct horse battery", "csrf_token": token}
    )
    assert refused.status_code == 401
    fine = web.client.post(
        "/signin",
        data={
            "email": "owner@shop.test",
            "password": "another good one",
            "csrf_token": token,
            "next": "/account/password",
        },
        follow_redirects=False,
    )
    assert fine.status_code == 303
    assert fine.headers["location"] == "/account/password"


def test_signup_validation_messages(web: Web) -> None:
    token = csrf(web.client, "/signup")
    answer = web.client.post("/signup", data={"email": "nope", "password": "short", "company": "", "csrf_token": token})
    assert answer.status_code == 422
    assert "enter your e-mail address" in answer.text
    assert "at least 10 characters" in answer.text


def test_forms_without_the_csrf_token_are_refused(web: Web) -> None:
    answer = web.client.post("/signup", data={"email": "a@b.test", "password": "long enough pw", "company": "X"})
    assert answer.status_code == 403
    assert "expired" in answer.text


def test_no_open_redirect_after_signin(web: Web) -> None:
    signup(web.client, "r@shop.test", "Shop R")
    token = csrf(web.client)
    web.client.post("/signout", data={"csrf_token": token})
    token = csrf(web.client)
    answer = web.client.post(
        "/signin",
        data={
            "email": "r@shop.test",
            "password": "correct horse battery",
            "csrf_token": token,
            "next": "//evil.example",
        },
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/"
