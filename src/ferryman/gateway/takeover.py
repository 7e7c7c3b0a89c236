"""A warm standby gateway: several processes on one port, the oldest one serving.

Each gateway binds the port with ``SO_REUSEPORT`` and attaches a one-instruction classic
BPF program to the port's socket group, ``return 0``: the kernel hands every new connection
to the group's first socket, the oldest gateway's. When that socket closes (its process
died: ``kill -9``, a crash, or the control plane killing it for missing its health
requests) the kernel moves the group's last socket into the first place, so a standby that
already listens takes the next connection: no refused connection, no polling, with or
without a control plane. Only connections queued on the dead socket are lost.
"""

from __future__ import annotations

import ctypes
import socket
import struct

SO_ATTACH_REUSEPORT_CBPF = 51  # <asm-generic/socket.h>
_RETURN_ZERO = struct.pack("HBBI", 0x06, 0, 0, 0)  # BPF_RET | BPF_K, k = 0


def listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening socket on ``host:port`` that serves only while no older gateway does."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        _steer_to_first(sock)
    except BaseException:
        sock.close()
        raise
    return sock


def _steer_to_first(sock: socket.socket) -> None:
    """Attach ``return 0`` as the port group's program (it replaces the same one)."""
    program = ctypes.create_string_buffer(_RETURN_ZERO)
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    fprog = struct.pack("@HP", 1, ctypes.addressof(program))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
