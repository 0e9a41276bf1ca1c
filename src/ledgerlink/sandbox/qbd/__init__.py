"""A QuickBooks Desktop stand-in: a company file answering qbXML (`company`), the schema rules it enforces
(`schema`), and a Web Connector built on zeep that runs sessions against ledgerlink's SOAP service (`driver`)."""

from ledgerlink.sandbox.qbd.company import QbdCompany, QbdParseError, QuickBooksCrashed, seed_company
from ledgerlink.sandbox.qbd.schema import SchemaError, check_request

__all__ = ["QbdCompany", "QbdParseError", "QuickBooksCrashed", "SchemaError", "check_request", "seed_company"]
