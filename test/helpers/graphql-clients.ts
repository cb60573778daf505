/**
 * What real clients do with this schema's responses, without their build tools: an Apollo Client 4
 * over HTTP with the default InMemoryCache (its cache warnings collected), and relay-runtime's store
 * fed through a normalization AST built from the query document as relay-compiler would for a query
 * without fragments (fields, aliases, arguments and each field's concrete type).
 */
import {
  buildSchema,
  getNamedType,
  isAbstractType,
  isListType,
  isNonNullType,
  Kind,
  parse,
  valueFromASTUntyped,
  type FieldNode,
  type GraphQLObjectType,
  type GraphQLSchema,
  type GraphQLType,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import { ApolloClient, HttpLink, InMemoryCache } from '@apollo/client';
import { Environment, Network, RecordSource, Store, createOperationDescriptor } from 'relay-runtime';
import { typeDefs } from '../../src/schema/index.js';

export const schema: GraphQLSchema = buildSchema(typeDefs);

/** An Apollo client on the default cache; `warnings` receives every console.warn/error it makes. */
export function apolloClient(url: string): { client: ApolloClient; warnings: string[]; restore: () => void } {
  const warnings: string[] = [];
  const { warn, error } = console;
  console.warn = (...args: unknown[]) => warnings.push(args.map(String).join(' '));
  console.error = (...args: unknown[]) => warnings.push(args.map(String).join(' '));
  const client = new ApolloClient({ link: new HttpLink({ uri: url }), cache: new InMemoryCache() });
  return {
    client,
    warnings,
    restore: () => {
      console.warn = warn;
      console.error = error;
    },
  };
}

const unwrapList = (t: GraphQLType): boolean => isListType(isNonNullType(t) ? t.ofType : t);

function relaySelections(parent: GraphQLObjectType, set: SelectionSetNode): unknown[] {
  return set.selections.map((s) => {
    if (s.kind !== Kind.FIELD) throw new Error('fragments are outside this helper');
    const f = s as FieldNode;
    const def = f.name.value === '__typename' ? null : parent.getFields()[f.name.value];
    const args = (f.arguments ?? []).map((a) =>
      a.value.kind === Kind.VARIABLE
        ? { kind: 'Variable', name: a.name.value, variableName: a.value.name.value }
        : { kind: 'Literal', name: a.name.value, value: valueFromASTUntyped(a.value) },
    );
    const common = { alias: f.alias?.value ?? null, name: f.name.value, args: args.length ? args : null };
    if (!f.selectionSet) return { kind: 'ScalarField', ...common, storageKey: null };
    const named = getNamedType(def!.type);
    if (isAbstractType(named)) throw new Error('abstract fields are outside this helper');
    return {
      kind: 'LinkedField',
      ...common,
      storageKey: null,
      concreteType: named.name,
      plural: unwrapList(def!.type),
      selections: relaySelections(named as GraphQLObjectType, f.selectionSet),
    };
  });
}

/** A relay-runtime ConcreteRequest for a query document without fragments. */
export function relayRequest(query: string) {
  const op = parse(query).definitions[0] as OperationDefinitionNode;
  const name = op.name?.value ?? 'Anonymous';
  const selections = relaySelections(schema.getQueryType()!, op.selectionSet);
  const argumentDefinitions = (op.variableDefinitions ?? []).map((v) => ({
    kind: 'LocalArgument',
    name: v.variable.name.value,
    defaultValue: null,
  }));
  return {
    kind: 'Request',
    fragment: { kind: 'Fragment', name, type: 'Query', metadata: null, argumentDefinitions, selections },
    operation: { kind: 'Operation', name, argumentDefinitions, selections },
    params: { id: null, cacheID: name, metadata: {}, name, operationKind: 'query', text: query },
  } as any;
}

/** Normalizes a response into a fresh Relay store and reads it back through the same query. */
export function relayRoundTrip(query: string, variables: Record<string, unknown>, response: unknown): unknown {
  const env = new Environment({
    network: Network.create(() => Promise.reject(new Error('no network'))),
    store: new Store(new RecordSource()),
  });
  const operation = createOperationDescriptor(relayRequest(query), variables);
  env.commitPayload(operation, response as any);
  return env.lookup(operation.fragment).data;
}
