"""Who a client is, for the audit trail: the OS user and the host."""

import getpass
import socket


def client_actor() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"
