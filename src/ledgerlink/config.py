"""Process configuration from the environment (`LEDGERLINK_` prefix). Built once, in the composition root."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "development-only-not-a-secret"  # noqa: S105 - refused outside development, see below


class Settings(BaseSettings):
    """Where the data lives and how to reach the broker; secrets never have a usable default in production."""

    model_config = SettingsConfigDict(env_prefix="LEDGERLINK_", env_file=".env", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    database_url: str = Field(default="", description="SQLAlchemy URL; SQLite file under data_dir when empty")
    secret_key: SecretStr = SecretStr(DEV_SECRET)
    broker_url: str = ""
    # The web app: the address people reach it at (OAuth redirect URIs are built from it).
    public_url: str = "http://127.0.0.1:8000"
    session_https_only: bool = False
    # The QuickBooks Online app ("Connect to QuickBooks"); endpoints default to Intuit's, a sandbox overrides them.
    qbo_client_id: str = ""
    qbo_client_secret: SecretStr = SecretStr("")
    qbo_environment: Literal["production", "sandbox"] = "production"
    qbo_api_base: str = ""
    qbo_authorize_url: str = ""
    qbo_token_url: str = ""
    # Intuit signs QuickBooks Online webhooks with the app's verifier token (`intuit-signature`); empty refuses them.
    qbo_verifier_token: SecretStr = SecretStr("")
    # Demo mode (`ledgerlink serve --demo`): the local sandboxes' addresses, shown as hints on the forms.
    demo_shopify_url: str = ""
    demo_shopify_shop: str = ""
    demo_shopify_token: str = ""
    demo_shopify_webhook_secret: str = ""

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.env == "production" and self.secret_key.get_secret_value() == DEV_SECRET:
            raise ValueError("set LEDGERLINK_SECRET_KEY: the development key is refused in production")
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            # Accept the plain postgresql:// form users copy from their provider; we drive it with psycopg 3.
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{self.data_dir / 'ledgerlink.db'}"
