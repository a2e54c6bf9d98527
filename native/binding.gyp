# The native AEAD addon (aead.c), built by `npm install` (native/build.mjs runs node-gyp; a failed
# build leaves Pigeon on its pure-JavaScript path). No libraries are linked: the OpenSSL symbols come
# from the Node binary that loads the addon, and node-gyp's include path puts that OpenSSL's headers
# (include/node/openssl) ahead of any system copy. See docs/performance.md.
{
  'targets': [
    {
      'target_name': 'pigeon_aead',
      'sources': ['aead.c'],
      'defines': ['NAPI_VERSION=8'],
      'cflags': ['-O2', '-Wall', '-Wextra', '-Wno-unused-parameter'],
      'xcode_settings': { 'OTHER_CFLAGS': ['-O2', '-Wall'] },
    },
  ],
}
