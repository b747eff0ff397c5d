/*
 * Strict Nextflow lint without Nextflow: run the nf-lang parser (ScriptParser for .nf,
 * ConfigParser for .config) from the language-server jar over the given files.
 *
 * Usage: java -cp language-server-all.jar groovy.ui.GroovyMain nf_lint.groovy FILE...
 * Prints one tab-separated line per diagnostic: LEVEL, file, line, column, message.
 * Exit status 1 when any error was found, so CI fails on errors and only reports warnings.
 */
import nextflow.config.control.ConfigParser
import nextflow.script.control.ScriptParser
import org.codehaus.groovy.control.messages.ExceptionMessage
import org.codehaus.groovy.control.messages.SyntaxErrorMessage
import org.codehaus.groovy.control.messages.WarningMessage

def files = args.collect { new File(it).canonicalFile }
if( !files ) {
    System.err.println('usage: nf_lint.groovy FILE...')
    System.exit(2)
}

// All scripts go through one parser so that includes between them are resolved and checked.
def scriptParser = new ScriptParser()
def configParser = new ConfigParser()
files.each { f ->
    if( f.name.endsWith('.nf') )
        scriptParser.parse(f)
    else if( f.name.endsWith('.config') )
        configParser.parse(f)
    else
        throw new IllegalArgumentException("not a .nf or .config file: ${f}")
}
scriptParser.analyze()
configParser.analyze()

int nErrors = 0
def report = { String level, String path, int line, int col, String msg ->
    println([level, path, line, col, msg.replaceAll(/\s+/, ' ').trim()].join('\t'))
}
[scriptParser, configParser].each { parser ->
    parser.compiler().getSources().values().sort { it.getName() }.each { source ->
        def collector = source.getErrorCollector()
        collector.getErrors()?.each { msg ->
            nErrors++
            if( msg instanceof SyntaxErrorMessage ) {
                def cause = msg.getCause()
                report('ERROR', source.getName(), cause.getStartLine(), cause.getStartColumn(), cause.getOriginalMessage())
            }
            else if( msg instanceof ExceptionMessage ) {
                report('ERROR', source.getName(), 0, 0, (msg.getCause()?.getMessage() ?: String.valueOf(msg.getCause())))
            }
            else {
                report('ERROR', source.getName(), 0, 0, msg.toString())
            }
        }
        collector.getWarnings()?.each { WarningMessage msg ->
            def token = msg.getContext()?.getRoot()
            report('WARNING', source.getName(), token?.getStartLine() ?: 0, token?.getStartColumn() ?: 0, msg.getMessage())
        }
    }
}
println("SUMMARY\t${files.size()} files\t${nErrors} errors")
System.exit(nErrors ? 1 : 0)
