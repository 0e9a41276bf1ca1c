"""The QuickBooks Web Connector endpoint: SOAP 1.1 at `POST /qbwc`, its WSDL at `GET /qbwc?wsdl`.

Document/literal wrapped in the namespace `http://developer.intuit.com/`, with the method and parameter names
of Intuit's sample service (WCWebService.asmx): each call is `<method><param>…</param></method>` in the
body, each answer `<methodResponse><methodResult>…</methodResult></methodResponse>`. The Web Connector
posts to the AppURL of the .qwc file (`{public_url}/qbwc`); the WSDL is for SOAP clients such as zeep.

The request is parsed without entities, DTDs or network access; the sessions live in the database
(`sync/qbwc.py`), so any web process can answer any call. No CSRF and no cookie session: the Web Connector
signs in with its ticket.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request
from fastapi.responses import Response
from lxml import etree
from starlette.concurrency import run_in_threadpool

from ledgerlink.books.qbd.qbxml import QbXmlError, parse_xml
from ledgerlink.sync.qbwc import WebConnectorService
from ledgerlink.web.deps import application
from ledgerlink.web.security import verify_password

NS = "http://developer.intuit.com/"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
MAX_BODY = 64 * 1024 * 1024  # a page of a long list with addresses stays far below this
SOAP_TYPE = "text/xml; charset=utf-8"

router = APIRouter(include_in_schema=False)

# method → (its parameters in order, the type of its result: "string", "int" or "strings")
METHODS: dict[str, tuple[tuple[str, ...], str]] = {
    "serverVersion": ((), "string"),
    "clientVersion": (("strVersion",), "string"),
    "authenticate": (("strUserName", "strPassword"), "strings"),
    "sendRequestXML": (
        ("ticket", "strHCPResponse", "strCompanyFileName", "qbXMLCountry", "qbXMLMajorVers", "qbXMLMinorVers"),
        "string",
    ),
    "receiveResponseXML": (("ticket", "response", "hresult", "message"), "int"),
    "connectionError": (("ticket", "hresult", "message"), "string"),
    "getLastError": (("ticket",), "string"),
    "closeConnection": (("ticket",), "string"),
}
_INT_PARAMS = frozenset({"qbXMLMajorVers", "qbXMLMinorVers"})


class SoapFault(Exception):
    """A request we cannot answer: sent back as a SOAP Fault."""

    def __init__(self, message: str, *, client: bool = True) -> None:
        self.client = client
        super().__init__(message)


def service_for(request: Request) -> WebConnectorService:
    """The Web Connector service over the app's database and secret box (made once per app)."""
    app = application(request)
    service = getattr(request.app.state, "qbwc_service", None)
    if not isinstance(service, WebConnectorService):
        service = WebConnectorService(app.db, app.box, verify=verify_password)
        request.app.state.qbwc_service = service
    return service


@router.get("/qbwc")
def wsdl(request: Request) -> Response:
    """The WSDL (any GET answers it, `?wsdl` or not); the address is the URL the WSDL was read from."""
    location = str(request.url.replace(query="", fragment=""))
    return Response(build_wsdl(location), media_type=SOAP_TYPE)


@router.post("/qbwc")
async def soap(request: Request) -> Response:
    """One SOAP call of the Web Connector."""
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY:
            return _fault("the request is too large", client=True)
    service = service_for(request)
    try:
        method, params = read_call(bytes(body), request.headers.get("soapaction", ""))
        result = await run_in_threadpool(_dispatch, service, method, params)
    except SoapFault as exc:
        return _fault(str(exc), client=exc.client)
    return Response(write_result(method, result), media_type=SOAP_TYPE)


def read_call(body: bytes, soap_action: str = "") -> tuple[str, dict[str, str]]:
    """The method and its parameters from a SOAP 1.1 envelope (untrusted: parsed safely)."""
    try:
        root = parse_xml(body)
    except QbXmlError as exc:
        raise SoapFault(f"not a SOAP request: {exc}") from None
    if etree.QName(root).localname != "Envelope" or etree.QName(root).namespace != SOAP_ENV:
        raise SoapFault("not a SOAP 1.1 envelope")
    soap_body = root.find(f"{{{SOAP_ENV}}}Body")
    if soap_body is None or len(soap_body) == 0:
        raise SoapFault("the SOAP envelope has no body")
    call = soap_body[0]
    qname = etree.QName(call)
    method = qname.localname
    if qname.namespace != NS or method not in METHODS:
        raise SoapFault(f"unknown method {{{qname.namespace}}}{method}")
    action = soap_action.strip().strip('"')
    if action and action not in (f"{NS}{method}", method):
        raise SoapFault(f"SOAPAction {action!r} does not match the method {method!r}")
    params: dict[str, str] = {}
    for child in call:
        if not isinstance(child.tag, str):
            continue
        params[etree.QName(child).localname] = child.text or ""
    return method, params


def _dispatch(service: WebConnectorService, method: str, params: dict[str, str]) -> Any:
    names, _kind = METHODS[method]
    values: dict[str, Any] = {}
    for name in names:
        raw = params.get(name, "")
        if name in _INT_PARAMS:
            try:
                values[name] = int(raw or 0)
            except ValueError:
                raise SoapFault(f"{name} must be a whole number, got {raw!r}") from None
        else:
            values[name] = raw
    calls: dict[str, Callable[[], Any]] = {
        "serverVersion": service.server_version,
        "clientVersion": lambda: service.client_version(values["strVersion"]),
        "authenticate": lambda: service.authenticate(values["strUserName"], values["strPassword"]),
        "sendRequestXML": lambda: service.send_request_xml(
            values["ticket"],
            values["strHCPResponse"],
            values["strCompanyFileName"],
            values["qbXMLCountry"],
            values["qbXMLMajorVers"],
            values["qbXMLMinorVers"],
        ),
        "receiveResponseXML": lambda: service.receive_response_xml(
            values["ticket"], values["response"], values["hresult"], values["message"]
        ),
        "connectionError": lambda: service.connection_error(values["ticket"], values["hresult"], values["message"]),
        "getLastError": lambda: service.get_last_error(values["ticket"]),
        "closeConnection": lambda: service.close_connection(values["ticket"]),
    }
    return calls[method]()


def write_result(method: str, result: Any) -> str:
    """`<methodResponse><methodResult>…</methodResult></methodResponse>` in a SOAP envelope."""
    _names, kind = METHODS[method]
    if kind == "strings":
        inner = "".join(f"<string>{escape(str(value))}</string>" for value in result)
    else:
        inner = escape(str(result))
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>'
        f'<{method}Response xmlns="{NS}"><{method}Result>{inner}</{method}Result></{method}Response>'
        "</soap:Body></soap:Envelope>"
    )


def _fault(message: str, *, client: bool) -> Response:
    code = "soap:Client" if client else "soap:Server"
    text = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body><soap:Fault>'
        f"<faultcode>{code}</faultcode><faultstring>{escape(message)}</faultstring>"
        "</soap:Fault></soap:Body></soap:Envelope>"
    )
    return Response(text, status_code=500, media_type=SOAP_TYPE)


def build_wsdl(location: str) -> str:
    """The WSDL of the service (Intuit's QBWebConnectorSvc contract), answering at `location`."""
    elements: list[str] = []
    messages: list[str] = []
    operations: list[str] = []
    bindings: list[str] = []
    for method, (names, kind) in METHODS.items():
        params = "".join(
            f'<s:element minOccurs="1" maxOccurs="1" name="{n}" type="s:int"/>'
            if n in _INT_PARAMS
            else f'<s:element minOccurs="0" maxOccurs="1" name="{n}" type="s:string"/>'
            for n in names
        )
        if kind == "int":
            result = f'<s:element minOccurs="1" maxOccurs="1" name="{method}Result" type="s:int"/>'
        elif kind == "strings":
            result = f'<s:element minOccurs="0" maxOccurs="1" name="{method}Result" type="tns:ArrayOfString"/>'
        else:
            result = f'<s:element minOccurs="0" maxOccurs="1" name="{method}Result" type="s:string"/>'
        elements.append(
            f'<s:element name="{method}"><s:complexType><s:sequence>{params}</s:sequence></s:complexType></s:element>'
            f'<s:element name="{method}Response"><s:complexType><s:sequence>{result}</s:sequence>'
            "</s:complexType></s:element>"
        )
        messages.append(
            f'<wsdl:message name="{method}SoapIn"><wsdl:part name="parameters" element="tns:{method}"/></wsdl:message>'
            f'<wsdl:message name="{method}SoapOut"><wsdl:part name="parameters" element="tns:{method}Response"/>'
            "</wsdl:message>"
        )
        operations.append(
            f'<wsdl:operation name="{method}"><wsdl:input message="tns:{method}SoapIn"/>'
            f'<wsdl:output message="tns:{method}SoapOut"/></wsdl:operation>'
        )
        bindings.append(
            f'<wsdl:operation name="{method}"><soap:operation soapAction="{NS}{method}" style="document"/>'
            '<wsdl:input><soap:body use="literal"/></wsdl:input>'
            '<wsdl:output><soap:body use="literal"/></wsdl:output></wsdl:operation>'
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<wsdl:definitions xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" '
        'xmlns:s="http://www.w3.org/2001/XMLSchema" '
        f'xmlns:tns="{NS}" targetNamespace="{NS}" '
        'xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/">'
        f'<wsdl:types><s:schema elementFormDefault="qualified" targetNamespace="{NS}">'
        '<s:complexType name="ArrayOfString"><s:sequence>'
        '<s:element minOccurs="0" maxOccurs="unbounded" name="string" nillable="true" type="s:string"/>'
        "</s:sequence></s:complexType>"
        f"{''.join(elements)}</s:schema></wsdl:types>"
        f"{''.join(messages)}"
        f'<wsdl:portType name="QBWebConnectorSvcSoap">{"".join(operations)}</wsdl:portType>'
        '<wsdl:binding name="QBWebConnectorSvcSoap" type="tns:QBWebConnectorSvcSoap">'
        '<soap:binding transport="http://schemas.xmlsoap.org/soap/http"/>'
        f"{''.join(bindings)}</wsdl:binding>"
        '<wsdl:service name="QBWebConnectorSvc">'
        '<wsdl:port name="QBWebConnectorSvcSoap" binding="tns:QBWebConnectorSvcSoap">'
        f'<soap:address location="{escape(location, {chr(34): "&quot;"})}"/></wsdl:port></wsdl:service>'
        "</wsdl:definitions>\n"
    )
