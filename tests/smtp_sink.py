#!/usr/bin/env python3
"""A real SMTP server for the integration tests (aiosmtpd on 127.0.0.1).

Usage: smtp_sink.py OUT_DIR [--transient N] [--reject ADDR ...] [--auth-required] [--discard]

Saves each accepted message's exact bytes (as received after SMTP dot-unstuffing, CRLF kept)
as OUT_DIR/NNNNNN.eml, written to a temporary name and renamed so a reader never sees half a
file, with its envelope in OUT_DIR/NNNNNN.json. Prints "PORT <n>" on stdout once it accepts
connections and runs until killed. --transient N answers the first N DATA commands with 451
(a transient failure); --reject ADDR answers RCPT TO:<ADDR> with 550 (a permanent one);
--auth-required answers every MAIL FROM with 530 (a server that wants a login).
--discard accepts and counts messages without saving them (benchmarks: the sender's speed,
not the disk's).
"""

import argparse
import asyncio
import json
import os
import socket
import sys
import threading

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out, transient, rejected, discard=False, auth_required=False):
        self.out = out
        self.auth_required = auth_required
        self.discard = discard
        self.transient = transient
        self.rejected = {a.lower() for a in rejected}
        self.count = 0
        self.lock = threading.Lock()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.auth_required:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.rejected:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.transient > 0:
                self.transient -= 1
                return "451 4.3.0 try again later"
            self.count += 1
            n = self.count
        if self.discard:
            return "250 OK discarded"
        base = os.path.join(self.out, "%06d" % n)
        with open(base + ".json.tmp", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        os.rename(base + ".json.tmp", base + ".json")
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 OK saved"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--transient", type=int, default=0)
    p.add_argument("--reject", action="append", default=[])
    p.add_argument("--discard", action="store_true")
    p.add_argument("--auth-required", action="store_true")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    port = free_port()
    controller = Controller(
        Sink(args.out, args.transient, args.reject, args.discard, args.auth_required),
        hostname="127.0.0.1",
        port=port,
        decode_data=False,
    )
    controller.start()
    print("PORT %d" % port, flush=True)
    try:
        threading.Event().wait()
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
