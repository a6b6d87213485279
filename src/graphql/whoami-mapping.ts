/**
 * testWhoAmIMapping (AGENT and ADMIN keys): what a sign-in would make of a WhoAmI answer, without
 * a sign-in. Problems with the mapping or the payload come back in `errors`, never as a GraphQL
 * error; the use case is in services/identity-mapping.ts, shared with the sign-in flow.
 */
import { MAPPING_LIMITS, type MappingError } from '../core/whoami-mapping.ts'
import {
  MAX_TEST_ACCESS_TOKEN_LENGTH,
  testMapping,
  type MappingTestResult,
} from '../services/identity-mapping.ts'
import { IdentityRef } from './auth-session.ts'
import { builder } from './builder.ts'
import { principalOf } from './context.ts'

const MappingErrorRef = builder.objectRef<MappingError>('MappingError').implement({
  description:
    'A problem with a mapping, a payload or a mapped field. The message starts with what it is about (`mapping:`, `payload:`, a field name such as `email`) and never quotes payload values.',
  fields: (t) => ({
    message: t.exposeString('message', {
      description:
        'What is wrong, and for a syntax error where: "syntax error at position N: …", N counting characters of `expression` from 0.',
    }),
  }),
})

const WhoAmIMappingResultRef = builder
  .objectRef<MappingTestResult>('WhoAmIMappingResult')
  .implement({
    description:
      'What a sign-in would make of the payload: the identity it would store, or why it would fail.',
    fields: (t) => ({
      identity: t.field({
        type: IdentityRef,
        nullable: true,
        description:
          'The identity exactly as a sign-in with this mapping and setting would store it; null when `errors` is not empty.',
        resolve: (result) => result.identity,
      }),
      errors: t.field({
        type: [MappingErrorRef],
        description:
          'Why no identity came out (a sign-in would fail with mapping_failed); empty on success.',
        resolve: (result) => result.errors,
      }),
      warnings: t.field({
        type: [MappingErrorRef],
        description:
          'What was cleaned or left out of the standard fields although the mapping worked, e.g. an email that is not an email address (it stays in attributes).',
        resolve: (result) => result.warnings,
      }),
      notes: t.stringList({
        description:
          'What was done to the input to make it usable: the repairs of a mapping pasted from documentation (quotes around it, escaped quotes, ...), or a payload string parsed as JSON. Save `expression`, not what was pasted.',
        resolve: (result) => [...result.notes],
      }),
      expression: t.string({
        nullable: true,
        description:
          'The mapping that ran, after the repairs in `notes`: what to save as the whoAmIMapping. Null when no mapping ran.',
        resolve: (result) => result.expression,
      }),
    }),
  })

const TestWhoAmIMappingInput = builder.inputType('TestWhoAmIMappingInput', {
  description:
    'A mapping and a WhoAmI answer to try it on: either `payload`, or `integrationId` with `accessToken` to fetch the answer from the integration.',
  fields: (t) => ({
    mapping: t.string({
      description: `A JMESPath expression (at most ${MAPPING_LIMITS.maxExpressionLength} characters), e.g. {userName: user.id, fullName: user.name, email: user.email}. A mapping pasted with quotes around it or with escaped quotes is repaired, as \`notes\` says. Left out with integrationId: the integration's saved mapping; null or empty: no mapping (the payload is used as it is, as a sign-in without a mapping does).`,
    }),
    payload: t.field({
      type: 'JSON',
      description:
        'The WhoAmI answer to map: a JSON object (a string holding one is parsed), at most 1 MiB and 64 levels deep. Required unless accessToken is given.',
    }),
    integrationId: t.id({
      description:
        'An integration of this tenant: its splitFullName setting and (when mapping is left out) its saved mapping are used; with accessToken, its WhoAmI URL is called.',
    }),
    accessToken: t.string({
      description: `An end user's access token for the integration's provider (needs integrationId): the service calls the integration's WhoAmI URL with it, as a sign-in does, and maps the answer. Used for this one call only: never stored, logged or returned. At most ${MAX_TEST_ACCESS_TOKEN_LENGTH} characters.`,
    }),
    splitFullName: t.boolean({
      description:
        "Split fullName into firstName and lastName when only fullName is given. Default: the integration's setting, or true without integrationId.",
    }),
  }),
})

builder.mutationField('testWhoAmIMapping', (t) =>
  t.field({
    type: WhoAmIMappingResultRef,
    description:
      "Tries a WhoAmI mapping (AGENT and ADMIN keys) and returns the identity exactly as a sign-in would produce it, with what is wrong in `errors` rather than as a GraphQL error. Writes nothing. NOT_FOUND when integrationId is not one of the tenant's integrations.",
    authScopes: { agent: true },
    args: {
      input: t.arg({
        type: TestWhoAmIMappingInput,
        required: true,
        description: 'The mapping and the answer to try it on.',
      }),
    },
    resolve: (_root, { input }, ctx) =>
      testMapping(ctx.deps, principalOf(ctx).tenantId, {
        mapping: input.mapping,
        payload: input.payload,
        integrationId: input.integrationId == null ? null : String(input.integrationId),
        accessToken: input.accessToken,
        splitFullName: input.splitFullName,
      }),
  }),
)
