#!/usr/bin/env python3
"""Build an OpenAPI 3.0.3 subset for the Microsoft Graph v1.0 operations used by the
identity-response system, from Microsoft's own CSDL ($metadata) file.

Inputs
  csdl: clean_v10_metadata/cleanMetadata.xml from github.com/microsoftgraph/msgraph-metadata
        (the official v1.0 $metadata, the source the official OpenAPI files are generated from).
Method
  * Component schemas are generated from the CSDL for the entity/complex/enum types reachable
    from the chosen root types through STRUCTURAL properties and base types (navigation
    properties are omitted), following the naming and type-mapping conventions of
    Microsoft.OpenApi.OData (github.com/microsoft/OpenAPI.NET.OData), which produces
    msgraph-metadata/openapi/v1.0/openapi.yaml:
      schema names 'microsoft.graph.<type>', derived types as allOf[$ref base, {...}],
      Edm.DateTimeOffset -> string/date-time (+pattern), Edm.Guid -> string/uuid (+pattern),
      Edm.Int32 -> number/int32 (+min/max), Edm.Int64 -> number/int64,
      Edm.Double -> oneOf[number/double, string, ReferenceNumeric], nullable enum/complex
      properties -> anyOf[$ref, {type: object, nullable: true}], enums -> {title, enum, type: string}.
  * DEVIATION (deliberate): the official files mark '@odata.type' as *required* on every
    entity/complex schema (converter setting EnableDiscriminatorValue).  Real Graph responses and
    PATCH bodies usually omit '@odata.type', so with that rule real traffic fails validation.
    Here '@odata.type' is an optional property.  Pass --strict-odata-type to restore 'required'.
  * Paths/operations are written by hand in the same style as the official generated files
    (checked against msgraph-sdk-powershell openApiDocs/v1.0/Identity.SignIns.yml), with the
    namespace-unqualified action segments (as in the docs); qualified aliases
    ('.../microsoft.graph.confirmCompromised') are added too because Graph accepts both.
  * '/$batch' is NOT in Microsoft's OpenAPI files; it is hand-written from the JSON batching doc.
  * DEVIATIONS for real-traffic validation: revokeSignInSessions' {value: bool} wrapper allows
    '@odata.context' (official wrapper has additionalProperties: {type: object}, which rejects the
    string '@odata.context' Graph returns); ODataErrors.InnerError.date is a plain string (Graph
    returns '2020-08-18T12:51:51', which fails the official date-time pattern).
  * PATCH /users/{id} and the riskyUsers actions declare '204' (what Graph returns) instead of the
    generator's '2XX'.
  * Eviction operations (added for Clampdown issue 16): GET /users/{id}/memberOf/microsoft.graph.directoryRole
    (type-cast segment, a directoryRole collection), GET /users/{id}/registeredDevices/microsoft.graph.device
    (cast: a device collection), PATCH /devices/{id} ('204'), GET /users/{id}/authentication/methods and
    DELETE /users/{id}/authentication/{fido2Methods|microsoftAuthenticatorMethods|phoneMethods|
    temporaryAccessPassMethods}/{id} ('204', as the docs' examples answer). Collection items of
    authenticationMethod are the base type; the derived types' properties pass as additional properties.
  * Residual access operations (Clampdown issue 16, item 3): GET /policies/tokenLifetimePolicies (the
    policyRoot navigation, a tokenLifetimePolicy collection; tokenLifetimePolicy -> stsPolicy ->
    policyBase -> directoryObject) and POST /policies/tokenLifetimePolicies ('201' with the entity, as
    the create docs answer).
"""
import sys, argparse, xml.etree.ElementTree as ET, yaml, copy

NS = {'edm': 'http://docs.oasis-open.org/odata/ns/edm'}
DT_PATTERN = '^[0-9]{4,}-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,12})?(Z|[+-][0-9][0-9]:[0-9][0-9])$'
GUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
DATE_PATTERN = '^[0-9]{4,}-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])$'
TOD_PATTERN = '^([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9])([.][0-9]{1,12})?$'
DUR_PATTERN = '^-?P([0-9]+D)?(T([0-9]+H)?([0-9]+M)?([0-9]+([.][0-9]+)?S)?)?$'

def ref(name):
    return {'$ref': f'#/components/schemas/{name}'}

class Model:
    def __init__(self, path):
        root = ET.parse(path).getroot()
        schema = root.find('.//edm:Schema[@Namespace="microsoft.graph"]', NS)
        self.types = {}
        for el in schema:
            tag = el.tag.split('}')[1]
            if tag in ('EntityType', 'ComplexType', 'EnumType'):
                self.types[el.get('Name')] = (tag, el)

    @staticmethod
    def short(t):
        for p in ('graph.', 'microsoft.graph.'):
            if t.startswith(p):
                return t[len(p):]
        return None

    def derived_of(self, name):
        out = []
        for n, (tag, el) in self.types.items():
            b = el.get('BaseType')
            if b and self.short(b) == name:
                out.append(n)
        return sorted(out)

class Gen:
    def __init__(self, model, strict):
        self.m, self.strict = model, strict
        self.schemas, self.todo = {}, []
        self.need_refnum = False

    def want(self, name):
        if name not in self.schemas and name not in self.todo:
            self.todo.append(name)

    def prim(self, t, nullable):
        s = {
            'Edm.String': {'type': 'string'},
            'Edm.Boolean': {'type': 'boolean'},
            'Edm.DateTimeOffset': {'pattern': DT_PATTERN, 'type': 'string', 'format': 'date-time'},
            'Edm.Date': {'pattern': DATE_PATTERN, 'type': 'string', 'format': 'date'},
            'Edm.TimeOfDay': {'pattern': TOD_PATTERN, 'type': 'string', 'format': 'time'},
            'Edm.Duration': {'pattern': DUR_PATTERN, 'type': 'string', 'format': 'duration'},
            'Edm.Guid': {'pattern': GUID_PATTERN, 'type': 'string', 'format': 'uuid'},
            'Edm.Int32': {'maximum': 2147483647, 'minimum': -2147483648, 'type': 'number', 'format': 'int32'},
            'Edm.Int16': {'maximum': 32767, 'minimum': -32768, 'type': 'number', 'format': 'int16'},
            'Edm.Byte': {'maximum': 255, 'minimum': 0, 'type': 'number', 'format': 'uint8'},
            'Edm.Int64': {'type': 'number', 'format': 'int64'},
            'Edm.Binary': {'type': 'string', 'format': 'base64url'},
            'Edm.Stream': {'type': 'string', 'format': 'base64url'},
            'Edm.Untyped': {},
        }.get(t)
        if t in ('Edm.Double', 'Edm.Single', 'Edm.Decimal'):
            self.need_refnum = True
            fmt = {'Edm.Double': 'double', 'Edm.Single': 'float', 'Edm.Decimal': 'decimal'}[t]
            s = {'oneOf': [{'type': 'number', 'format': fmt}, {'type': 'string'}, ref('ReferenceNumeric')]}
            if nullable:
                s['oneOf'][0]['nullable'] = True; s['oneOf'][1]['nullable'] = True
            return s
        if s is None:
            raise KeyError(t)
        s = dict(s)
        if nullable and s:
            s['nullable'] = True
        return s

    def prop_schema(self, t, nullable):
        coll = t.startswith('Collection(')
        inner = t[len('Collection('):-1] if coll else t
        if inner.startswith('Edm.'):
            item = self.prim(inner, nullable if not coll else nullable)
        else:
            name = self.m.short(inner)
            self.want(name)
            full = f'microsoft.graph.{name}'
            if coll:
                item = ref(full)
            elif nullable:
                item = {'anyOf': [ref(full), {'type': 'object', 'nullable': True}]}
            else:
                item = ref(full)
        if coll:
            return {'type': 'array', 'items': item}
        return item

    def build(self, name):
        tag, el = self.m.types[name]
        full = f'microsoft.graph.{name}'
        if tag == 'EnumType':
            s = {'title': name, 'enum': [m.get('Name') for m in el.findall('edm:Member', NS)], 'type': 'string'}
            if el.get('IsFlags') == 'true':
                s['x-ms-enum-flags'] = {'isFlags': True}
            self.schemas[full] = s
            return
        props = {}
        for p in el.findall('edm:Property', NS):
            nullable = p.get('Nullable') != 'false'
            props[p.get('Name')] = self.prop_schema(p.get('Type'), nullable)
        props['@odata.type'] = {'type': 'string'}
        body = {'title': name}
        if self.strict:
            body['required'] = ['@odata.type']
        body['type'] = 'object'
        body['properties'] = props
        derived = self.m.derived_of(name)
        base = el.get('BaseType')
        if base:
            bname = self.m.short(base)
            self.want(bname)
            s = {'allOf': [ref(f'microsoft.graph.{bname}'), body]}
        else:
            s = body
        if tag == 'ComplexType' and not base and not derived:
            pass
        self.schemas[full] = s

    def run(self, roots):
        for r in roots:
            self.want(r)
        while self.todo:
            self.build(self.todo.pop(0))
        if self.need_refnum:
            self.schemas['ReferenceNumeric'] = {'enum': ['-INF', 'INF', 'NaN']}
        return dict(sorted(self.schemas.items()))

# ---------------------------------------------------------------- operations (hand-written)
def qparam(name, desc):
    return {'name': name, 'in': 'query', 'description': desc, 'style': 'form', 'explode': False,
            'schema': {'uniqueItems': True, 'type': 'array', 'items': {'type': 'string'}}}
SELECT = qparam('$select', 'Select properties to be returned')
EXPAND = qparam('$expand', 'Expand related entities')
ORDERBY = qparam('$orderby', 'Order items by property values')
LISTP = [{'$ref': '#/components/parameters/top'}, {'$ref': '#/components/parameters/skip'},
         {'$ref': '#/components/parameters/search'}, {'$ref': '#/components/parameters/filter'},
         {'$ref': '#/components/parameters/count'}, ORDERBY, SELECT, EXPAND]
CONSISTENCY = {'name': 'ConsistencyLevel', 'in': 'header',
               'description': 'Indicates the requested consistency level. Documentation URL: https://docs.microsoft.com/graph/aad-advanced-queries',
               'style': 'simple', 'schema': {'type': 'string'},
               'examples': {'example-1': {'description': "$search and $count queries require the client to set the ConsistencyLevel HTTP header to 'eventual'.", 'value': 'eventual'}}}
ERR = {'$ref': '#/components/responses/error'}
def keyp(name, typ):
    return {'name': name, 'in': 'path', 'description': f'The unique identifier of {typ}', 'required': True,
            'style': 'simple', 'schema': {'type': 'string'}, 'x-ms-docs-key-type': typ}
def coll_resp(t):
    return {'$ref': f'#/components/responses/microsoft.graph.{t}CollectionResponse'}
def json_content(schema):
    return {'application/json': {'schema': schema}}
def pageable():
    return {'nextLinkName': '@odata.nextLink', 'operationName': 'listMore'}
def action_body(params):
    return {'description': 'Action parameters', 'required': True,
            'content': json_content({'type': 'object', 'properties': params, 'additionalProperties': {'type': 'object'}})}
IDS = {'userIds': {'type': 'array', 'items': {'type': 'string', 'nullable': True}}}

def paths():
    P = {}
    P['/users'] = {'get': {
        'tags': ['users.user'], 'summary': 'List users', 'operationId': 'user_ListUser',
        'externalDocs': {'description': 'Find more info here', 'url': 'https://learn.microsoft.com/graph/api/user-list?view=graph-rest-1.0'},
        'parameters': [CONSISTENCY] + LISTP,
        'responses': {'2XX': coll_resp('user'), 'default': ERR},
        'x-ms-pageable': pageable(), 'x-ms-docs-operation-type': 'operation'}}
    P['/users/{user-id}'] = {
        'parameters': [keyp('user-id', 'user')],
        'get': {'tags': ['users.user'], 'summary': 'Get user', 'operationId': 'user_GetUser',
                'description': 'Retrieve the properties and relationships of user object. {user-id} may be the object id or the userPrincipalName.',
                'externalDocs': {'description': 'Find more info here', 'url': 'https://learn.microsoft.com/graph/api/user-get?view=graph-rest-1.0'},
                'parameters': [CONSISTENCY, SELECT, EXPAND],
                'responses': {'2XX': {'description': 'Retrieved entity', 'content': json_content(ref('microsoft.graph.user'))}, 'default': ERR},
                'x-ms-docs-operation-type': 'operation'},
        'patch': {'tags': ['users.user'], 'summary': 'Update user', 'operationId': 'user_UpdateUser',
                  'description': 'Update the properties of a user object. Graph returns 204 No Content on success.',
                  'externalDocs': {'description': 'Find more info here', 'url': 'https://learn.microsoft.com/graph/api/user-update?view=graph-rest-1.0'},
                  'requestBody': {'description': 'New property values', 'required': True, 'content': json_content(ref('microsoft.graph.user'))},
                  'responses': {'204': {'description': 'Success'}, 'default': ERR},
                  'x-ms-docs-operation-type': 'operation'}}
    rev = {'post': {'tags': ['users.user.Actions'], 'summary': 'Invoke action revokeSignInSessions',
                    'description': "Invalidates all the refresh tokens issued to applications for a user (and session cookies in a user's browser), by resetting the signInSessionsValidFromDateTime user property to the current date-time.",
                    'externalDocs': {'description': 'Find more info here', 'url': 'https://learn.microsoft.com/graph/api/user-revokesigninsessions?view=graph-rest-1.0'},
                    'operationId': 'user_revokeSignInSession',
                    'responses': {'2XX': {'description': 'Success', 'content': json_content({'type': 'object', 'properties': {'@odata.context': {'type': 'string'}, 'value': {'type': 'boolean', 'default': False}}})}, 'default': ERR},
                    'x-ms-docs-operation-type': 'action'},
           'parameters': [keyp('user-id', 'user')]}
    P['/users/{user-id}/revokeSignInSessions'] = rev
    P['/users/{user-id}/microsoft.graph.revokeSignInSessions'] = relabel(rev, '_qualified')
    P['/identityProtection/riskyUsers'] = {'get': {
        'tags': ['identityProtection.riskyUser'], 'summary': 'List riskyUsers', 'operationId': 'identityProtection_ListRiskyUser',
        'externalDocs': {'description': 'Find more info here', 'url': 'https://learn.microsoft.com/graph/api/riskyuser-list?view=graph-rest-1.0'},
        'parameters': LISTP, 'responses': {'2XX': coll_resp('riskyUser'), 'default': ERR},
        'x-ms-pageable': pageable(), 'x-ms-docs-operation-type': 'operation'}}
    P['/identityProtection/riskyUsers/{riskyUser-id}'] = {
        'parameters': [keyp('riskyUser-id', 'riskyUser')],
        'get': {'tags': ['identityProtection.riskyUser'], 'summary': 'Get riskyUser',
                'description': 'Read the properties and relationships of a riskyUser object.',
                'externalDocs': {'description': 'Find more info here', 'url': 'https://learn.microsoft.com/graph/api/riskyuser-get?view=graph-rest-1.0'},
                'operationId': 'identityProtection_GetRiskyUser', 'parameters': [SELECT, EXPAND],
                'responses': {'2XX': {'description': 'Retrieved navigation property', 'content': json_content(ref('microsoft.graph.riskyUser'))}, 'default': ERR},
                'x-ms-docs-operation-type': 'operation'}}
    P['/identityProtection/riskyUsers/{riskyUser-id}/history'] = {
        'parameters': [keyp('riskyUser-id', 'riskyUser')],
        'get': {'tags': ['identityProtection.riskyUser'], 'summary': 'List history of riskyUser',
                'operationId': 'identityProtection.riskyUser_ListHistory', 'parameters': LISTP,
                'responses': {'2XX': coll_resp('riskyUserHistoryItem'), 'default': ERR},
                'x-ms-pageable': pageable(), 'x-ms-docs-operation-type': 'operation'}}
    for act, desc, doc in (
            ('confirmCompromised', "Confirm one or more riskyUser objects as compromised. This action sets the targeted user's risk level to high.", 'riskyuser-confirmcompromised'),
            ('dismiss', "Dismiss the risk of one or more riskyUser objects. This action sets the targeted user's risk level to none.", 'riskyuser-dismiss'),
            ('confirmSafe', 'Confirm one or more riskyUser objects as safe (v1.0 CSDL has this action; not in the brief).', 'riskyuser-confirmsafe')):
        item = {'post': {'tags': ['identityProtection.riskyUser'], 'summary': f'Invoke action {act}', 'description': desc,
                         'externalDocs': {'description': 'Find more info here', 'url': f'https://learn.microsoft.com/graph/api/{doc}?view=graph-rest-1.0'},
                         'operationId': f'identityProtection.riskyUser_{act}', 'requestBody': action_body(IDS),
                         'responses': {'204': {'description': 'Success'}, 'default': ERR},
                         'x-ms-docs-operation-type': 'action'}}
        P[f'/identityProtection/riskyUsers/{act}'] = item
        P[f'/identityProtection/riskyUsers/microsoft.graph.{act}'] = relabel(item, '_qualified')
    P['/auditLogs/signIns'] = {'get': {
        'tags': ['auditLogs.signIn'], 'summary': 'List signIns', 'operationId': 'auditLog_ListSignIn',
        'externalDocs': {'description': 'Find more info here', 'url': 'https://learn.microsoft.com/graph/api/signin-list?view=graph-rest-1.0'},
        'parameters': LISTP, 'responses': {'2XX': coll_resp('signIn'), 'default': ERR},
        'x-ms-pageable': pageable(), 'x-ms-docs-operation-type': 'operation'}}
    P['/auditLogs/signIns/{signIn-id}'] = {
        'parameters': [keyp('signIn-id', 'signIn')],
        'get': {'tags': ['auditLogs.signIn'], 'summary': 'Get signIn', 'operationId': 'auditLog_GetSignIn',
                'parameters': [SELECT, EXPAND],
                'responses': {'2XX': {'description': 'Retrieved navigation property', 'content': json_content(ref('microsoft.graph.signIn'))}, 'default': ERR},
                'x-ms-docs-operation-type': 'operation'}}
    eviction_paths(P)
    residual_paths(P)
    P['/$batch'] = {'post': {
        'tags': ['batch'], 'summary': 'JSON batching (hand-written; not part of Microsoft\'s OpenAPI files)',
        'description': 'Up to 20 requests. Each response carries its own status; a request whose dependsOn target failed gets 424. Throttled individual requests get status 429 with their own Retry-After header.',
        'externalDocs': {'url': 'https://learn.microsoft.com/graph/json-batching'},
        'operationId': 'batch_Post',
        'requestBody': {'required': True, 'content': json_content(ref('BatchRequest'))},
        'responses': {'200': {'description': 'Batch processed (individual statuses inside)', 'content': json_content(ref('BatchResponse'))},
                      '400': {'description': 'Malformed batch (e.g. more than 20 requests, duplicate ids)', 'content': json_content(ref('microsoft.graph.ODataErrors.ODataError'))},
                      'default': ERR}}}
    return P

EVICTION_ROOTS = ['directoryRole', 'device', 'authenticationMethod', 'fido2AuthenticationMethod',
                  'microsoftAuthenticatorAuthenticationMethod', 'phoneAuthenticationMethod',
                  'temporaryAccessPassAuthenticationMethod', 'passwordAuthenticationMethod']
RESIDUAL_ROOTS = ['tokenLifetimePolicy']
COLLECTIONS = ('user', 'riskyUser', 'riskyUserHistoryItem', 'signIn', 'directoryRole', 'device', 'authenticationMethod',
               'tokenLifetimePolicy')
METHOD_KINDS = (('fido2Methods', 'fido2AuthenticationMethod', 'fido2authenticationmethod-delete'),
                ('microsoftAuthenticatorMethods', 'microsoftAuthenticatorAuthenticationMethod', 'microsoftauthenticatorauthenticationmethod-delete'),
                ('phoneMethods', 'phoneAuthenticationMethod', 'phoneauthenticationmethod-delete'),
                ('temporaryAccessPassMethods', 'temporaryAccessPassAuthenticationMethod', 'temporaryaccesspassauthenticationmethod-delete'))

def eviction_paths(P):
    user = keyp('user-id', 'user')
    P['/users/{user-id}/memberOf/microsoft.graph.directoryRole'] = {'parameters': [user], 'get': {
        'tags': ['users.directoryObject'], 'summary': 'Get the items of type microsoft.graph.directoryRole in the microsoft.graph.directoryObject collection',
        'operationId': 'user_ListMemberOfAsDirectoryRole',
        'externalDocs': {'description': 'Find more info here', 'url': 'https://learn.microsoft.com/graph/api/user-list-memberof?view=graph-rest-1.0'},
        'parameters': [CONSISTENCY] + LISTP, 'responses': {'2XX': coll_resp('directoryRole'), 'default': ERR},
        'x-ms-pageable': pageable(), 'x-ms-docs-operation-type': 'operation'}}
    P['/users/{user-id}/registeredDevices/microsoft.graph.device'] = {'parameters': [user], 'get': {
        'tags': ['users.directoryObject'], 'summary': 'Get the items of type microsoft.graph.device in the microsoft.graph.directoryObject collection',
        'operationId': 'user_ListRegisteredDeviceAsDevice',
        'externalDocs': {'description': 'Find more info here', 'url': 'https://learn.microsoft.com/graph/api/user-list-registereddevices?view=graph-rest-1.0'},
        'parameters': [CONSISTENCY] + LISTP, 'responses': {'2XX': coll_resp('device'), 'default': ERR},
        'x-ms-pageable': pageable(), 'x-ms-docs-operation-type': 'operation'}}
    P['/devices/{device-id}'] = {'parameters': [keyp('device-id', 'device')],
        'get': {'tags': ['devices.device'], 'summary': 'Get device', 'operationId': 'device_GetDevice',
                'externalDocs': {'description': 'Find more info here', 'url': 'https://learn.microsoft.com/graph/api/device-get?view=graph-rest-1.0'},
                'parameters': [SELECT, EXPAND],
                'responses': {'2XX': {'description': 'Retrieved entity', 'content': json_content(ref('microsoft.graph.device'))}, 'default': ERR},
                'x-ms-docs-operation-type': 'operation'},
        'patch': {'tags': ['devices.device'], 'summary': 'Update device', 'operationId': 'device_UpdateDevice',
                  'description': 'Update the properties of a device (e.g. accountEnabled). {device-id} is the object id, not the deviceId. Graph returns 204 No Content on success.',
                  'externalDocs': {'description': 'Find more info here', 'url': 'https://learn.microsoft.com/graph/api/device-update?view=graph-rest-1.0'},
                  'requestBody': {'description': 'New property values', 'required': True, 'content': json_content(ref('microsoft.graph.device'))},
                  'responses': {'204': {'description': 'Success'}, 'default': ERR},
                  'x-ms-docs-operation-type': 'operation'}}
    P['/users/{user-id}/authentication/methods'] = {'parameters': [user], 'get': {
        'tags': ['users.authentication'], 'summary': 'List methods', 'operationId': 'user.authentication_ListMethod',
        'description': 'Retrieve a list of authentication methods registered to a user.',
        'externalDocs': {'description': 'Find more info here', 'url': 'https://learn.microsoft.com/graph/api/authentication-list-methods?view=graph-rest-1.0'},
        'parameters': LISTP, 'responses': {'2XX': coll_resp('authenticationMethod'), 'default': ERR},
        'x-ms-pageable': pageable(), 'x-ms-docs-operation-type': 'operation'}}
    for nav, typ, doc in METHOD_KINDS:
        P[f'/users/{{user-id}}/authentication/{nav}/{{{typ}-id}}'] = {
            'parameters': [user, keyp(f'{typ}-id', typ)],
            'delete': {'tags': ['users.authentication'], 'summary': f'Delete {typ}',
                       'operationId': f'user.authentication_Delete{nav[0].upper()}{nav[1:-1]}',
                       'externalDocs': {'description': 'Find more info here', 'url': f'https://learn.microsoft.com/graph/api/{doc}?view=graph-rest-1.0'},
                       'parameters': [{'name': 'If-Match', 'in': 'header', 'description': 'ETag', 'style': 'simple', 'schema': {'type': 'string'}}],
                       'responses': {'204': {'description': 'Success'}, 'default': ERR},
                       'x-ms-docs-operation-type': 'operation'}}

def residual_paths(P):
    P['/policies/tokenLifetimePolicies'] = {
        'get': {'tags': ['policies.tokenLifetimePolicy'], 'summary': 'List tokenLifetimePolicies',
                'description': 'Get a list of tokenLifetimePolicy objects.',
                'operationId': 'policy_ListTokenLifetimePolicy',
                'externalDocs': {'description': 'Find more info here', 'url': 'https://learn.microsoft.com/graph/api/tokenlifetimepolicy-list?view=graph-rest-1.0'},
                'parameters': LISTP, 'responses': {'2XX': coll_resp('tokenLifetimePolicy'), 'default': ERR},
                'x-ms-pageable': pageable(), 'x-ms-docs-operation-type': 'operation'},
        'post': {'tags': ['policies.tokenLifetimePolicy'], 'summary': 'Create tokenLifetimePolicy',
                 'description': 'Create a new tokenLifetimePolicy object. Graph returns 201 Created with the object.',
                 'operationId': 'policy_CreateTokenLifetimePolicy',
                 'externalDocs': {'description': 'Find more info here', 'url': 'https://learn.microsoft.com/graph/api/tokenlifetimepolicy-post-tokenlifetimepolicies?view=graph-rest-1.0'},
                 'requestBody': {'description': 'New navigation property', 'required': True, 'content': json_content(ref('microsoft.graph.tokenLifetimePolicy'))},
                 'responses': {'201': {'description': 'Created navigation property.', 'content': json_content(ref('microsoft.graph.tokenLifetimePolicy'))}, 'default': ERR},
                 'x-ms-docs-operation-type': 'operation'}}

def relabel(item, suffix):
    it = copy.deepcopy(item)
    for k, v in it.items():
        if isinstance(v, dict) and 'operationId' in v:
            v['operationId'] += suffix
            v['description'] = (v.get('description', '') + ' (namespace-qualified alias of the same action)').strip()
    return it

def common_components():
    s = {}
    s['microsoft.graph.ODataErrors.ODataError'] = {'required': ['error'], 'type': 'object',
        'properties': {'error': ref('microsoft.graph.ODataErrors.MainError')}}
    s['microsoft.graph.ODataErrors.MainError'] = {'required': ['code', 'message'], 'type': 'object',
        'properties': {'code': {'type': 'string'}, 'message': {'type': 'string', 'x-ms-primary-error-message': True},
                       'target': {'type': 'string', 'nullable': True},
                       'details': {'type': 'array', 'items': ref('microsoft.graph.ODataErrors.ErrorDetails')},
                       'innerError': ref('microsoft.graph.ODataErrors.InnerError')}}
    s['microsoft.graph.ODataErrors.ErrorDetails'] = {'required': ['code', 'message'], 'type': 'object',
        'properties': {'code': {'type': 'string'}, 'message': {'type': 'string'}, 'target': {'type': 'string', 'nullable': True}}}
    s['microsoft.graph.ODataErrors.InnerError'] = {'type': 'object', 'description': 'The structure of this object is service-specific',
        'properties': {'request-id': {'type': 'string', 'description': 'Request Id as tracked internally by the service', 'nullable': True},
                       'client-request-id': {'type': 'string', 'description': 'Client request Id as sent by the client application.', 'nullable': True},
                       'date': {'type': 'string', 'description': 'Date when the error occured. DEVIATION: official schema has format date-time + pattern, but Graph sends e.g. 2020-08-18T12:51:51 (no offset).', 'nullable': True}}}
    s['ODataCountResponse'] = {'type': 'number', 'format': 'int64'}
    s['BaseCollectionPaginationCountResponse'] = {'title': 'Base collection pagination and count responses', 'type': 'object',
        'properties': {'@odata.count': {'type': 'number', 'format': 'int64', 'nullable': True}, '@odata.nextLink': {'type': 'string', 'nullable': True}}}
    for t in COLLECTIONS:
        s[f'microsoft.graph.{t}CollectionResponse'] = {'title': f'Collection of {t}', 'type': 'object', 'allOf': [
            ref('BaseCollectionPaginationCountResponse'),
            {'type': 'object', 'properties': {'value': {'type': 'array', 'items': ref(f'microsoft.graph.{t}')}}}]}
    s['BatchRequest'] = {'type': 'object', 'required': ['requests'], 'properties': {'requests': {
        'type': 'array', 'minItems': 1, 'maxItems': 20, 'items': {'type': 'object', 'required': ['id', 'method', 'url'],
            'properties': {'id': {'type': 'string'}, 'method': {'type': 'string', 'enum': ['GET', 'POST', 'PATCH', 'PUT', 'DELETE']},
                           'url': {'type': 'string', 'description': "relative URL, e.g. '/users/{id}' (no version prefix)"},
                           'headers': {'type': 'object', 'additionalProperties': {'type': 'string'}},
                           'body': {'description': 'JSON value or base64url string; requires a Content-Type header'},
                           'dependsOn': {'type': 'array', 'items': {'type': 'string'}}}}}}}
    s['BatchResponse'] = {'type': 'object', 'required': ['responses'], 'properties': {'responses': {
        'type': 'array', 'items': {'type': 'object', 'required': ['id', 'status'],
            'properties': {'id': {'type': 'string'}, 'status': {'type': 'integer'},
                           'headers': {'type': 'object', 'additionalProperties': {'type': 'string'}},
                           'body': {}}}}, '@odata.nextLink': {'type': 'string'}}}
    responses = {'error': {'description': 'error', 'content': json_content(ref('microsoft.graph.ODataErrors.ODataError'))},
                 'ODataCountResponse': {'description': 'The count of the resource', 'content': {'text/plain': {'schema': ref('ODataCountResponse')}}}}
    for t in COLLECTIONS:
        responses[f'microsoft.graph.{t}CollectionResponse'] = {'description': 'Retrieved collection',
            'content': json_content(ref(f'microsoft.graph.{t}CollectionResponse'))}
    params = {
        'top': {'name': '$top', 'in': 'query', 'description': 'Show only the first n items', 'style': 'form', 'explode': False, 'schema': {'minimum': 0, 'type': 'integer'}, 'example': 50},
        'skip': {'name': '$skip', 'in': 'query', 'description': 'Skip the first n items', 'style': 'form', 'explode': False, 'schema': {'minimum': 0, 'type': 'integer'}},
        'search': {'name': '$search', 'in': 'query', 'description': 'Search items by search phrases', 'style': 'form', 'explode': False, 'schema': {'type': 'string'}},
        'filter': {'name': '$filter', 'in': 'query', 'description': 'Filter items by property values', 'style': 'form', 'explode': False, 'schema': {'type': 'string'}},
        'count': {'name': '$count', 'in': 'query', 'description': 'Include count of items', 'style': 'form', 'explode': False, 'schema': {'type': 'boolean'}},
    }
    sec = {'azureaadv2': {'type': 'oauth2', 'flows': {
        'authorizationCode': {'authorizationUrl': 'https://login.microsoftonline.com/common/oauth2/v2.0/authorize',
                              'tokenUrl': 'https://login.microsoftonline.com/common/oauth2/v2.0/token', 'scopes': {}},
        'clientCredentials': {'tokenUrl': 'https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token',
                              'scopes': {'https://graph.microsoft.com/.default': 'all application permissions granted to the app'}}}}}
    return s, responses, params, sec

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('csdl'); ap.add_argument('out')
    ap.add_argument('--strict-odata-type', action='store_true')
    ap.add_argument('--source-commit', default='unknown')
    a = ap.parse_args()
    m = Model(a.csdl)
    g = Gen(m, a.strict_odata_type)
    schemas = g.run(['user', 'riskyUser', 'riskyUserHistoryItem', 'signIn'] + EVICTION_ROOTS + RESIDUAL_ROOTS)
    cs, responses, params, sec = common_components()
    schemas.update(cs)
    doc = {'openapi': '3.0.3',
           'info': {'title': 'Microsoft Graph v1.0 - identity-response subset (generated from official CSDL)',
                    'version': 'v1.0',
                    'description': f'Generated by build_graph_subset.py from microsoftgraph/msgraph-metadata clean_v10_metadata/cleanMetadata.xml at commit {a.source_commit}. NOT an official Microsoft file; see the script docstring for the exact method and deviations.'},
           'servers': [{'url': 'https://graph.microsoft.com/v1.0/', 'description': 'Core'}],
           'paths': paths(),
           'components': {'schemas': schemas, 'responses': responses, 'parameters': params, 'securitySchemes': sec},
           'security': [{'azureaadv2': []}]}
    with open(a.out, 'w') as f:
        yaml.safe_dump(doc, f, sort_keys=False, width=200, allow_unicode=True)
    print(f'schemas={len(schemas)} paths={len(doc["paths"])}', file=sys.stderr)

if __name__ == '__main__':
    main()
