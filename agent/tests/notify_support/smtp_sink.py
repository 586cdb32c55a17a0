# A loopback SMTP server for tests: AUTH PLAIN/LOGIN without TLS against
# SINK_USER/SINK_PASSWORD, each message stored as <n>.json in the out dir.
import email, email.policy, json, os, signal, sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, out = int(sys.argv[1]), sys.argv[2]
user, password = os.environ["SINK_USER"].encode(), os.environ["SINK_PASSWORD"].encode()

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == user and auth_data.password == password
    return AuthResult(success=ok, handled=False, auth_data=auth_data)

class Sink:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        n = len([f for f in os.listdir(out) if f.endswith(".json")])
        record = {
            "mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
            "login": (session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None),
            "from": str(msg["From"]), "to": str(msg["To"]), "subject": str(msg["Subject"]),
            "body": msg.get_content(),
        }
        tmp = os.path.join(out, f"{n}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(out, f"{n}.json"))
        return "250 OK"

c = Controller(Sink(), hostname="127.0.0.1", port=port, authenticator=authenticator,
               auth_required=True, auth_require_tls=False)
c.start()
print("READY", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
c.stop()
