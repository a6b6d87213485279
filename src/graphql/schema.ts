// Loads every type file (each registers its types and root fields), then builds the schema.
import { assertValidSchema } from 'graphql'
import { builder } from './builder.ts'
import './scalars.ts'
import './viewer.ts'
import './api-key.ts'
import './oauth-integration.ts'
import './auth-session.ts'
import './whoami-mapping.ts'
import './webhook.ts'

export const schema = builder.toSchema({ sortSchema: true })
// Fail at start-up (and in every test), not on the first request, if a type file is wrong.
assertValidSchema(schema)
