"""The .qwc file that pairs the QuickBooks Web Connector with a QuickBooks Desktop connection.

Format: Intuit's QBWC Programmer's Guide and the sample `qbwc_HTTPSWebService.qwc` — one <QBWCXML> element.
The Web Connector remembers an application by OwnerID and a company file by FileID, so both are made once per
connection and kept in its config: downloading the file again must not pair a second application.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree import ElementTree as ET

from ledgerlink.sync.qbwc import DEFAULT_RUN_EVERY_MINUTES, MAX_RUN_EVERY_MINUTES, MIN_RUN_EVERY_MINUTES

APP_NAME = "ledgerlink"
RUN_EVERY_MINUTES = DEFAULT_RUN_EVERY_MINUTES


@dataclass(frozen=True, slots=True)
class QwcFile:
    """What goes into one .qwc file; `run_every_minutes` is the connection's schedule (1–1440)."""

    public_url: str
    user_name: str
    owner_id: str
    file_id: str
    app_id: str = ""
    description: str = "Posts your selling channels' orders into QuickBooks Desktop, once, to the cent."
    run_every_minutes: int = RUN_EVERY_MINUTES


def build_qwc(qwc: QwcFile) -> str:
    """The XML text of the .qwc file (UTF-8, with the XML declaration the Web Connector expects)."""
    if not MIN_RUN_EVERY_MINUTES <= qwc.run_every_minutes <= MAX_RUN_EVERY_MINUTES:
        raise ValueError(
            f"the Web Connector runs every {MIN_RUN_EVERY_MINUTES} to {MAX_RUN_EVERY_MINUTES} minutes, "
            f"not every {qwc.run_every_minutes}"
        )
    base = qwc.public_url.rstrip("/")
    root = ET.Element("QBWCXML")
    fields = [
        ("AppName", APP_NAME),
        ("AppID", qwc.app_id),
        ("AppURL", f"{base}/qbwc"),
        ("AppDescription", qwc.description),
        ("AppSupport", f"{base}/support"),
        ("UserName", qwc.user_name),
        ("OwnerID", qwc.owner_id),
        ("FileID", qwc.file_id),
        ("QBType", "QBFS"),
    ]
    for tag, text in fields:
        ET.SubElement(root, tag).text = text
    scheduler = ET.SubElement(root, "Scheduler")
    ET.SubElement(scheduler, "RunEveryNMinutes").text = str(qwc.run_every_minutes)
    ET.SubElement(root, "IsReadOnly").text = "false"
    ET.indent(root)
    return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
