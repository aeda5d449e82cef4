# Appends [orig batch (10 records), EMPTY-representation batch] to the librdkafka
# mock through a raw Produce v3, then consumes with kcat (librdkafka 2.0.2).
import os, socket, struct, subprocess, sys, time
D = os.path.dirname(os.path.abspath(__file__))
mode = sys.argv[1]
mc = subprocess.Popen([os.path.join(D, '../../../../build/mockcluster'), '--brokers', '1', '--topic', 't:1'],
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
boot = mc.stdout.readline().split()[1]
host, port = boot.split(',')[0].split(':')
def produce(batch, corr):
    body = struct.pack('>h', -1) + struct.pack('>hi', 1, 5000) + struct.pack('>i', 1)
    body += struct.pack('>h', 1) + b't' + struct.pack('>i', 1) + struct.pack('>i', 0)
    body += struct.pack('>i', len(batch)) + batch
    hdr = struct.pack('>hhi', 0, 3, corr) + struct.pack('>h', 2) + b'py'
    msg = hdr + body
    s = socket.create_connection((host, int(port)))
    s.sendall(struct.pack('>i', len(msg)) + msg)
    n = struct.unpack('>i', s.recv(4))[0]
    resp = b''
    while len(resp) < n: resp += s.recv(n - len(resp))
    s.close()
    # topics[1] name partition error base_offset
    err, base = struct.unpack('>hq', resp[4+4+2+1+4+4:4+4+2+1+4+4+10])
    return err, base
print('orig', produce(open(os.path.join(D, 'orig-0.bin'),'rb').read(), 1))
print(mode, produce(open(os.path.join(D, mode),'rb').read(), 2))
t = time.time()
r = subprocess.run(['kcat', '-b', boot, '-C', '-t', 't', '-o', 'beginning', '-e', '-f', '%o:%k\\n',
                    '-X', 'debug=fetch,msg', '-X', 'fetch.wait.max.ms=100', '-X', 'check.crcs=true'],
                   capture_output=True, text=True, timeout=20)
print('kcat rc', r.returncode, 'in %.1fs' % (time.time() - t), 'out:', r.stdout.split())
lines = [l for l in r.stderr.splitlines() if 'Enqueue' in l or 'Increasing' in l or 'ERROR' in l or 'EOF' in l or 'Reached' in l]
print('\n'.join(l[-170:] for l in lines[-8:]))
mc.stdin.write('quit\n'); mc.stdin.flush(); mc.wait()
