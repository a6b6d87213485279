// `npm run schema`: writes the printed schema that is checked in (test/graphql/schema-printed.test.ts).
import { writeFileSync } from 'node:fs'
import { printSchema } from 'graphql'
import { schema } from './schema.ts'

const file = new URL('../../schema.graphql', import.meta.url)
writeFileSync(file, `${printSchema(schema)}\n`)
process.stdout.write(`wrote ${file.pathname}\n`)
