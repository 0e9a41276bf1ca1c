"""Selling-channel adapters, one module per channel, chosen by the connection's kind."""

from __future__ import annotations

from ledgerlink.channels.base import (
    Channel,
    ChannelPage,
    Cursor,
    Window,
    channel_class,
    channel_parser,
    register_channel,
)

__all__ = ["Channel", "ChannelPage", "Cursor", "Window", "channel_class", "channel_parser", "register_channel"]
