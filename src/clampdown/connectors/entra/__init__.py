"""Microsoft Entra ID through Microsoft Graph: MSAL tokens, pacing, `$batch`, the connector.

The app registration needs these application permissions, granted with admin consent:
User.Read.All and User.EnableDisableAccount.All (suspend / enable), User.RevokeSessions.All
(revoke sessions), IdentityRiskyUser.ReadWrite.All (mark compromised / dismiss risk, Entra ID P2),
User-PasswordProfile.ReadWrite.All (force password reset), UserAuthenticationMethod.ReadWrite.All
(remove authentication methods), Device.ReadWrite.All (disable / enable devices; Graph lets an app
change accountEnabled of Windows devices only). To disable, or force a password change for, a user
holding an admin role, the app's service principal also needs the Privileged Authentication
Administrator directory role (privileged-user protection).
Residual access (what a contained user may still use) reads the token lifetime policies with
Policy.Read.All; without it, it takes Entra ID's default lifetime and says so.
`clampdown check` names any that are missing. A minimal `[providers.entra]`:

    tenant_id = "contoso.onmicrosoft.com"
    client_id = "00000000-0000-0000-0000-000000000000"
    client_secret = { env = "ENTRA_CLIENT_SECRET" }   # or certificate_path = "/etc/clampdown/app.pem"

A sovereign cloud sets `authority_host`, `graph_url` and `graph_scope` (e.g. login.microsoftonline.us,
graph.microsoft.us); the lab's emulator is reached the same way.
"""

from clampdown.connectors.entra.connector import EntraConnector
from clampdown.connectors.entra.settings import EntraSettings

__all__ = ["EntraConnector", "EntraSettings"]
