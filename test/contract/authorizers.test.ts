import t from 'tap';
import { actionForMethod, AlwaysAuthorizer, AnonymousGetAuthorizer } from '../../server/auth/index.js';
import { authorizerContract } from './authorizer-contract.js';

authorizerContract(t, 'AlwaysAuthorizer', new AlwaysAuthorizer(), {
  anonymous: { read: true, write: true },
  principal: { read: true, write: true },
});

authorizerContract(t, 'AnonymousGetAuthorizer', new AnonymousGetAuthorizer(), {
  anonymous: { read: true, write: false },
  principal: { read: true, write: true },
});

t.test('an anonymous write is told to send credentials', async (t) => {
  t.throws(() => new AnonymousGetAuthorizer().authorize(undefined, 'write'), {
    code: 'forbidden',
    message: /needs credentials \(send an Authorization header\)/,
  });
});

t.test('GET and HEAD read; other methods write', async (t) => {
  for (const method of ['GET', 'HEAD', 'get', 'head']) t.equal(actionForMethod(method), 'read', method);
  for (const method of ['POST', 'DELETE', 'PUT', 'PATCH', 'post']) t.equal(actionForMethod(method), 'write', method);
});
