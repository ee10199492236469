#!/usr/bin/env python3
"""Reference for nb_churn: the same N pod ports written as raw pipelined JSON-RPC.

No OVSDB library: requests are formatted as text, all written back to back on one unix
socket by a sender thread while the main thread reads and checks the replies. This is the
ceiling a client can reach on a given ovsdb-server, which nb_churn is measured against.

    raw_churn.py --remote unix:PATH --pods 10000 --mode per-pod|batch [--batch-ops 10000]
"""

import argparse
import json
import socket
import sys
import threading
import time

NB = "OVN_Northbound"
SWITCH = "node1"


def pod_address(i):
    n = i + 2
    hi, lo = (n >> 8) & 0xFF, n & 0xFF
    return f"0a:58:0a:10:{hi:02x}:{lo:02x} 10.16.{hi}.{lo}"


def insert_op(i, uuid_name):
    addr = pod_address(i)
    return (
        '{"op":"insert","table":"Logical_Switch_Port","uuid-name":"%s","row":'
        '{"name":"pod%d.ns","addresses":"%s","port_security":"%s",'
        '"external_ids":["map",[["pod","ns/pod%d"]]]}}' % (uuid_name, i, addr, addr, i)
    )


def mutate_op(names):
    refs = ",".join('["named-uuid","%s"]' % n for n in names)
    return (
        '{"op":"mutate","table":"Logical_Switch","where":[["name","==","%s"]],'
        '"mutations":[["ports","insert",["set",[%s]]]]}' % (SWITCH, refs)
    )


def request(txn_id, ops):
    return '{"id":%d,"method":"transact","params":["%s",%s]}' % (txn_id, NB, ",".join(ops))


class Replies:
    """Splits the reply stream into JSON texts (ovsdb-server sends them back to back)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = ""
        self.pos = 0
        self.decoder = json.JSONDecoder()

    def next(self):
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf):
                try:
                    msg, end = self.decoder.raw_decode(self.buf, self.pos)
                    self.pos = end
                    return msg
                except json.JSONDecodeError:
                    pass
            data = self.sock.recv(1 << 20)
            if not data:
                raise RuntimeError("server closed the connection")
            self.buf = self.buf[self.pos:] + data.decode()
            self.pos = 0


def check(reply):
    if reply.get("error") is not None:
        raise RuntimeError(f"rpc error: {reply['error']}")
    for result in reply.get("result") or []:
        if isinstance(result, dict) and "error" in result:
            raise RuntimeError(f"transaction error: {result}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remote", required=True)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--mode", choices=["per-pod", "batch"], required=True)
    parser.add_argument("--batch-ops", type=int, default=10000)
    args = parser.parse_args()
    if not args.remote.startswith("unix:"):
        sys.exit("raw_churn.py supports unix: remotes only")

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(args.remote[len("unix:"):])
    replies = Replies(sock)
    sock.sendall(request(0, ['{"op":"insert","table":"Logical_Switch","row":{"name":"%s"}}' % SWITCH]).encode())
    check(replies.next())

    started = time.monotonic()
    if args.mode == "per-pod":
        requests = (
            request(i + 1, [insert_op(i, "lsp"), mutate_op(["lsp"])]) for i in range(args.pods)
        )
        expected = args.pods
    else:
        per_txn = max(args.batch_ops - 1, 1)
        batches = []
        for start in range(0, args.pods, per_txn):
            end = min(start + per_txn, args.pods)
            names = ["p%d" % i for i in range(start, end)]
            ops = [insert_op(i, "p%d" % i) for i in range(start, end)] + [mutate_op(names)]
            batches.append(request(len(batches) + 1, ops))
        requests = iter(batches)
        expected = len(batches)

    def send_all():
        chunk = []
        size = 0
        for text in requests:
            chunk.append(text)
            size += len(text)
            if size >= 256 * 1024:
                sock.sendall("".join(chunk).encode())
                chunk, size = [], 0
        if chunk:
            sock.sendall("".join(chunk).encode())

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    for _ in range(expected):
        check(replies.next())
    sender.join()
    seconds = time.monotonic() - started

    print("client=raw-python")
    print(f"mode={args.mode}")
    print(f"pods={args.pods}")
    print(f"seconds={seconds:.3f}")
    print(f"transactions={expected}")
    print(f"pods_per_sec={args.pods / seconds:.0f}")


if __name__ == "__main__":
    main()
