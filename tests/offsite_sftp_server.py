"""A real SFTP server for the offsite tests: asyncssh on a loopback port.

Usage: python offsite_sftp_server.py ROOT HOST_KEY AUTHORIZED_KEYS [PORT [MAX_FILE_BYTES]]
Serves ROOT (chrooted) to any user holding a key in AUTHORIZED_KEYS, prints
the port it listens on, then runs until killed. With MAX_FILE_BYTES the server
process runs under that file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored): a write
past it fails with the kernel's EFBIG, as on a full disk or an exceeded quota.
"""

from __future__ import annotations

import asyncio
import resource
import signal
import sys

import asyncssh


async def serve(root: str, host_key: str, authorized_keys: str, port: int) -> None:
    server = await asyncssh.listen(
        "127.0.0.1",
        port,
        server_host_keys=[host_key],
        authorized_client_keys=authorized_keys,
        sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root.encode()),
        allow_scp=False,
        password_auth=False,
        kbdint_auth=False,
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    port = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    if len(sys.argv) > 5:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = int(sys.argv[5])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    asyncio.run(serve(sys.argv[1], sys.argv[2], sys.argv[3], port))
